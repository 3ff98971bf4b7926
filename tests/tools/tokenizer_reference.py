#!/usr/bin/env python3
"""Tokenizer parity fixtures for tests/test_tokenizers.cpp (built offline from texts Debian ships).

    tokenizer_reference.py DIR
writes DIR/bpe/tokenizer.json (byte-level BPE, Qwen2's pre-tokenizer and NFC normaliser, trained with HF
`tokenizers`), DIR/spm/tokenizer.model (SentencePiece BPE), DIR/texts.json and the reference ids of both:
DIR/expected.json = {"bpe": [[ids]...], "spm": [[ids]...]}.
"""
import glob
import json
import os
import sys

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"]
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
               r"|\s+(?!\S)|\s+")
MULTILINGUAL = [
    "Größere Übungen kosten 12,50 € — naïve café, coöperate, façade.",
    "Быстрая коричневая лиса перепрыгивает через ленивую собаку.",
    "数据并行训练需要同步梯度。東京は日本の首都です。",
    "한국어 문장도 토큰화되어야 합니다.", "العربية تكتب من اليمين إلى اليسار.", "ελληνικά γράμματα: αβγδε",
    "emoji 🙂🚀👩‍💻 and flags 🇩🇪🇯🇵", "tabs\tand\t\ttabs, newlines\n\n\nand   spaces    ",
    "numbers 1234567890 3.14159 -42 1e-5 0x1F", "combining e\u0301 vs \u00e9 (NFC)", "Ǆ ǅ ǆ ﬁ ﬂ Ⅻ ①",
    "it's they're we've I'm you'll he'd IT'S", "<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>What?<|im_end|>",
    "<|im_start|><|im_end|>x<img></img>", "a<|endoftext|>b <|im_end|> c", "<IMG_CONTEXT>", "",
]


def corpus():
    texts = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            texts.append(open(path, encoding="utf-8", errors="replace").read())
    for path in sorted(glob.glob("/usr/share/doc/*/copyright"))[:150]:
        try:
            texts.append(open(path, encoding="utf-8").read())
        except (UnicodeDecodeError, OSError):
            pass
    return texts


def main(out):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    import sentencepiece as spm
    texts = corpus()
    train = texts + MULTILINGUAL * 5
    os.makedirs(os.path.join(out, "bpe"), exist_ok=True)
    os.makedirs(os.path.join(out, "spm"), exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(train, trainers.BpeTrainer(vocab_size=3000, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens(SPECIALS)
    tok.save(os.path.join(out, "bpe", "tokenizer.json"))
    with open(os.path.join(out, "spm_train.txt"), "w") as f:
        for t in train:
            f.write(t + "\n")
    spm.SentencePieceTrainer.train(input=os.path.join(out, "spm_train.txt"), model_prefix=os.path.join(out, "spm", "tokenizer"),
                                   vocab_size=2000, model_type="bpe", character_coverage=1.0, byte_fallback=True,
                                   user_defined_symbols=SPECIALS, minloglevel=2)
    # Test texts: every corpus file as lines and as whole documents, the multilingual lines, special-token mixes.
    tests = []
    for t in texts[:40]:
        tests.append(t)
        tests += [l for l in t.split("\n")[:200]]
    tests += MULTILINGUAL + [a + b for a in MULTILINGUAL[:6] for b in ("<|im_end|>", "<img>", " <IMG_CONTEXT> ")]
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "spm", "tokenizer.model"))
    exp = {"bpe": [tok.encode(t, add_special_tokens=False).ids for t in tests], "spm": [sp.encode(t) for t in tests]}
    # SentencePiece normalises (NFKC, whitespace runs): its decode is the reference, not the input text.
    exp["spm_decoded"] = [sp.decode(ids) for ids in exp["spm"]]
    json.dump(tests, open(os.path.join(out, "texts.json"), "w"))
    json.dump(exp, open(os.path.join(out, "expected.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
