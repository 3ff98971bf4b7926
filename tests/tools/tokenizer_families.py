#!/usr/bin/env python3
"""Golden ids for the tokenizers of the three Phantom backbone families (tests/test_tokenizers.cpp), built offline.

    tokenizer_families.py DIR [FAMILY ...]     # default: every family; e.g. `phi3` alone for the CLI test

Builds, from Debian's license texts and the chat templates' own strings:
  DIR/qwen2/          byte-level BPE tokenizer.json (Qwen2's Split regex + NFC), loaded by AutoTokenizer as
                      Qwen2TokenizerFast
  DIR/phi3/           Llama-style tokenizer.json (SentencePiece BPE converted by LlamaTokenizerFast, legacy: Prepend ▁
                      + Replace normaliser, byte fallback) with Phi-3's added tokens (<|user|>, <|assistant|>, <|end|>,
                      <|system|> with rstrip) and Phantom's image tokens; tokenizer.model next to it, as Phi-3 ships
  DIR/llama/          the same model converted with legacy=False (Metaspace pre-tokenizer, prepend_scheme "first"),
                      plus added tokens with lstrip, single_word and normalized=True
  DIR/internlm2/      tokenizer.model + tokenizer_config.json naming InternLM2Tokenizer, a slow tokenizer that encodes
                      every segment between added tokens with SentencePiece (tokenization_internlm2.py here, loaded
                      with trust_remote_code from the directory itself), InternLM2's chat tokens as user-defined pieces
  DIR/internlm2_fast/ that model exported by LlamaTokenizerFast (tokenizer.json, legacy)
and DIR/texts.json, DIR/expected.json = {family: {"ids": [[...]], "decoded": [...]}}, DIR/prompts.json (chat
prompts with image runs as the official code builds them, and their ids per family).
Every reference is AutoTokenizer.from_pretrained(DIR/family): what the official Phantom code loads.
"""
import glob
import json
import os
import shutil
import sys

IMG = ["<img>", "</img>", "<IMG_CONTEXT>"]
PHI3 = ["<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]  # rstrip=True in Phi-3's tokenizer.json
CHATML = ["<|im_start|>", "<|im_end|>", "<|action_start|>"]
TOKENS_PER_TILE = 4  # image runs in the test prompts: <img> + 4 * tiles <IMG_CONTEXT> + </img>

QUESTIONS = [
    "What is in the image?", "Größere Übungen kosten 12,50 € — naïve café.", "数据并行训练需要同步梯度。東京は日本の首都です。",
    "emoji 🙂🚀👩‍💻 and flags 🇩🇪🇯🇵?", "tabs\tand\t\ttabs, newlines\n\n\nand   spaces    ", " leading space",
    "\nleading newline", "Which option?\nA. shirt\nB. coat\nAnswer with the option's letter from the given choices directly.",
    "Быстрая коричневая лиса 1234567890 3.14159", "한국어 문장 العربية ελληνικά", "trailing newline\n", "x",
]
ANSWERS = ["It is a shirt.", "B", " Ja, 12,50 €.", "東京です。\n\nSecond paragraph.", "🙂", "  two leading spaces"]
MISC = [
    "", " ", "  ", "\n", "\n\n", " \n ", "\t", "a  b   c    d", "ends with spaces   ", "  starts with spaces",
    "it's they're we've I'm you'll he'd IT'S", "combining e\u0301 vs \u00e9", "Ǆ ǅ ǆ ﬁ ﬂ Ⅻ ①", "\u00a0nbsp\u3000ideographic space",
    "<|user|>", "<|user|>\n", "<|user|>\n\n  x", "x <|end|> y", "<|end|>\n<|assistant|>\n", "a<|im_end|>\nb",
    "<img><IMG_CONTEXT><IMG_CONTEXT></img>", "word<sw>word <sw> <sw>", "  [LS] x [LS]", "▁ already has ▁ markers",
    "\U0001F9E0\U0001FAE0 rare emoji", "\x7f\x01 control", "<0x41> literal byte token text",
]


def images(tiles):
    return "<img>" + "<IMG_CONTEXT>" * (TOKENS_PER_TILE * tiles) + "</img>"


def chat_texts():
    """Whole conversations rendered with both templates: images, system turns, several turns."""
    out = []
    for tmpl in ("chatml", "phi3"):
        if tmpl == "chatml":
            sys_, u, e, a = "<|im_start|>system\n", "<|im_start|>user\n", "<|im_end|>", "<|im_start|>assistant\n"
        else:
            sys_, u, e, a = "<|system|>\n", "<|user|>\n", "<|end|>", "<|assistant|>\n"
        for i, q in enumerate(QUESTIONS):
            ans = ANSWERS[i % len(ANSWERS)]
            img = images(1 + i % 3) if i % 2 == 0 else ""
            out.append(u + img + q + e + a)                       # an evaluation prompt
            out.append(u + img + q + e + a + ans + e)             # one turn with its answer
            out.append(sys_ + "You are a helpful assistant." + e + u + q + e + a + ans + e + u + "And then?" + e + a)
            out.append(sys_ + "Be brief.\n" + e + "\n" + u + img + q + e + "\n" + a + ans + e + "\n")  # newlines between turns
    return out


def corpus():
    texts = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*"))[:12]:
        if os.path.isfile(path):
            texts.append(open(path, encoding="utf-8", errors="replace").read())
    return texts


def train_spm(train, out_prefix):
    import sentencepiece as spm
    with open(out_prefix + ".txt", "w") as f:
        for t in train:
            f.write(t + "\n")
    # Llama/Phi-3/InternLM2 settings: BPE, byte fallback, no normalisation, whitespace kept, digits split.
    spm.SentencePieceTrainer.train(input=out_prefix + ".txt", model_prefix=out_prefix, vocab_size=1500, model_type="bpe",
                                   character_coverage=0.9995, byte_fallback=True, normalization_rule_name="identity",
                                   remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True,
                                   user_defined_symbols=CHATML, minloglevel=2)
    return out_prefix + ".model"


INTERNLM2_TOKENIZER = '''
import os, shutil
import sentencepiece as spm
from transformers import PreTrainedTokenizer


class InternLM2Tokenizer(PreTrainedTokenizer):
    """Test stand-in with InternLM2's tokenisation: the slow tokenizer's added-token split, then SentencePiece on
    each segment."""
    vocab_files_names = {"vocab_file": "tokenizer.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file, **kwargs):
        self.vocab_file = vocab_file
        self.sp_model = spm.SentencePieceProcessor(model_file=vocab_file)
        super().__init__(**kwargs)

    @property
    def vocab_size(self):
        return self.sp_model.get_piece_size()

    def get_vocab(self):
        v = {self.sp_model.id_to_piece(i): i for i in range(self.vocab_size)}
        v.update(self.added_tokens_encoder)
        return v

    def _tokenize(self, text):
        return self.sp_model.encode(text, out_type=str)

    def _convert_token_to_id(self, token):
        return self.sp_model.piece_to_id(token)

    def _convert_id_to_token(self, index):
        return self.sp_model.id_to_piece(index)

    def convert_tokens_to_string(self, tokens):
        return self.sp_model.decode(tokens)

    def save_vocabulary(self, save_directory, filename_prefix=None):
        out = os.path.join(save_directory, "tokenizer.model")
        if os.path.abspath(out) != os.path.abspath(self.vocab_file):
            shutil.copy(self.vocab_file, out)
        return (out,)
'''


def decode_runs(sp, ids, added):
    """SentencePiece's decode of every run of model ids, added tokens as their text."""
    out, run = "", []
    for i in ids:
        if i in added:
            out += sp.decode(run) + added[i].content
            run = []
        else:
            run.append(i)
    return out + sp.decode(run)


def build(out, only=()):
    texts = corpus()
    chats = chat_texts()
    train = texts + QUESTIONS * 3 + ANSWERS * 3 + MISC * 2 + chats
    dirs = {f: os.path.join(out, f) for f in ("qwen2", "phi3", "llama", "internlm2", "internlm2_fast")
            if not only or f in only}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)

    if "qwen2" in dirs:
        build_qwen2(train, dirs["qwen2"])
    model = train_spm(train, os.path.join(out, "spm"))
    if "phi3" in dirs:
        build_phi3(model, dirs["phi3"])
    if "llama" in dirs:
        build_llama(model, dirs["llama"])
    if "internlm2" in dirs:
        build_internlm2(model, dirs["internlm2"])
    if "internlm2_fast" in dirs:
        build_internlm2_fast(model, dirs["internlm2_fast"])
    write_expected(out, dirs, texts, chats, model)


def build_qwen2(train, d):
    """Qwen2: byte-level BPE."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    split = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
             r"|\s+(?!\S)|\s+")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(train, trainers.BpeTrainer(vocab_size=1500, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens(["<|endoftext|>"] + CHATML + IMG)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   clean_up_tokenization_spaces=False)
    fast.save_pretrained(d)


def without_add_prefix_space(d):
    """As released configs: no add_prefix_space, so AutoTokenizer uses tokenizer.json as it is."""
    p = os.path.join(d, "tokenizer_config.json")
    c = json.load(open(p))
    c.pop("add_prefix_space", None)
    json.dump(c, open(p, "w"), indent=1)


def build_phi3(model, d):
    """Phi-3: legacy Llama conversion, Phi-3's rstrip chat tokens, Phantom's image tokens."""
    from transformers import AddedToken as HfAddedToken, LlamaTokenizerFast
    phi = LlamaTokenizerFast(vocab_file=model, legacy=True, from_slow=True, add_bos_token=False, add_prefix_space=True,
                             clean_up_tokenization_spaces=False)
    phi.add_special_tokens({"additional_special_tokens": [HfAddedToken("<|endoftext|>", special=True, normalized=False)]
                            + [HfAddedToken(t, rstrip=True, special=True, normalized=False) for t in PHI3]
                            + [HfAddedToken(t, special=True, normalized=False) for t in IMG]})
    phi.save_pretrained(d)
    without_add_prefix_space(d)


def build_llama(model, d):
    """Llama (legacy=False): Metaspace with prepend_scheme "first"; extra added-token rules."""
    from transformers import AddedToken as HfAddedToken, LlamaTokenizerFast
    lla = LlamaTokenizerFast(vocab_file=model, legacy=False, from_slow=True, add_bos_token=False, add_prefix_space=True,
                             clean_up_tokenization_spaces=False)
    lla.add_special_tokens({"additional_special_tokens": [HfAddedToken(t, rstrip=True, special=True, normalized=False)
                                                          for t in PHI3] + [HfAddedToken(t, special=True, normalized=False)
                                                                            for t in IMG]})
    lla.add_tokens([HfAddedToken("<sw>", single_word=True, normalized=False),
                    HfAddedToken("[LS]", lstrip=True, normalized=False), HfAddedToken("normword", normalized=True)])
    lla.save_pretrained(d)
    without_add_prefix_space(d)


def build_internlm2(model, d):
    """InternLM2: the slow tokenizer on tokenizer.model; chat tokens are user-defined pieces, image tokens added."""
    shutil.copy(model, os.path.join(d, "tokenizer.model"))
    open(os.path.join(d, "tokenization_internlm2.py"), "w").write(INTERNLM2_TOKENIZER)
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model)
    added = {str(sp.piece_to_id(t)): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                      "single_word": False, "special": True} for t in CHATML}
    for k, t in enumerate(IMG):
        added[str(sp.get_piece_size() + k)] = {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                               "single_word": False, "special": True}
    for k, t in enumerate(["<unk>", "<s>", "</s>"]):
        added[str(k)] = {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                         "special": True}
    json.dump({"tokenizer_class": "InternLM2Tokenizer", "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
               "added_tokens_decoder": added, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
               "pad_token": "</s>", "clean_up_tokenization_spaces": False},
              open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)


def build_internlm2_fast(model, d):
    """InternLM2 exported by LlamaTokenizerFast."""
    from transformers import AddedToken as HfAddedToken, LlamaTokenizerFast
    ifast = LlamaTokenizerFast(vocab_file=model, legacy=True, from_slow=True, add_bos_token=False, add_prefix_space=True,
                               clean_up_tokenization_spaces=False)
    ifast.add_special_tokens({"additional_special_tokens": [HfAddedToken(t, special=True, normalized=False)
                                                            for t in CHATML + IMG]})
    ifast.save_pretrained(d)
    os.remove(os.path.join(d, "tokenizer.model"))  # tokenizer.json alone
    without_add_prefix_space(d)


def write_expected(out, dirs, texts, chats, model):
    import sentencepiece as spm
    from transformers import AutoTokenizer
    sp = spm.SentencePieceProcessor(model_file=model)
    tests = []
    for t in texts:
        tests.append(t)
        tests += [l for l in t.split("\n")[:150]]
    tests += QUESTIONS + ANSWERS + MISC + chats
    tests += [a + b for a in QUESTIONS[:6] for b in ("<|im_end|>", "<img>", " <IMG_CONTEXT> ", "<|end|>\n", " \n<|user|>  \n")]
    # special tokens between words: decode(skip_special_tokens=True) must keep the words' spaces
    tests += [f"that{s}work" for s in ("<|im_end|> ", " <|im_end|>", "<img> ", "<IMG_CONTEXT> ", "<|end|> ", " <|user|> ")]
    tests += [f"{q}{s}{a}" for q, a in zip(QUESTIONS, ANSWERS) for s in ("<|im_end|>", "<img></img>", "<|end|>")]

    expected, prompts = {}, []
    # Evaluation prompts the official way: "<image>" -> image run, the whole string tokenised at once.
    for i, q in enumerate(QUESTIONS):
        tiles = [] if i % 3 == 2 else [1 + i % 2] * (1 + (i % 4 == 0))
        prompts.append({"question": q, "tiles": tiles})
    for fam, d in dirs.items():
        os.environ["HF_MODULES_CACHE"] = os.path.join(out, "hf_modules")
        t = AutoTokenizer.from_pretrained(d, trust_remote_code=True)
        ids = [t.encode(x, add_special_tokens=False) for x in tests]
        if fam == "internlm2":  # slow decode joins pieces with spaces; the reference is SentencePiece per run
            dec = [decode_runs(sp, x, t.added_tokens_decoder) for x in ids]
        else:
            dec = [t.decode(x, skip_special_tokens=False) for x in ids]
        # What `phantom generate` and `eval` print: decode(skip_special_tokens=True), here of answers with the tokens
        # the class skips (all_special_ids) at their start, end and between their words.
        skip_ids = sorted(set(t.all_special_ids))
        skip_cases = []
        for k, x in enumerate(["that work", "It is a shirt and a coat."] + ANSWERS + QUESTIONS):
            xi = t.encode(x, add_special_tokens=False)
            s, mid = skip_ids[k % len(skip_ids)], len(xi) // 2
            for case in ([s] + xi, xi[:mid] + [s] + xi[mid:], xi + [s], xi[:mid] + [s, s] + xi[mid:]):
                skip_cases.append({"ids": case, "text": t.decode(case, skip_special_tokens=True)})
        expected[fam] = {"ids": ids, "decoded": dec, "skip_cases": skip_cases, "class": type(t).__name__}
        tmpl = "phi3" if fam in ("phi3", "llama") else "chatml"
        u, e, a = ("<|user|>\n", "<|end|>", "<|assistant|>\n") if tmpl == "phi3" else ("<|im_start|>user\n", "<|im_end|>", "<|im_start|>assistant\n")
        for p in prompts:
            text = "".join(images(n) for n in p["tiles"]) + p["question"]
            p.setdefault("ids", {})[fam] = t.encode(u + text + e + a, add_special_tokens=False)
            p.setdefault("text", {})[fam] = u + text + e + a
    json.dump(tests, open(os.path.join(out, "texts.json"), "w"))
    json.dump(expected, open(os.path.join(out, "expected.json"), "w"))
    json.dump(prompts, open(os.path.join(out, "prompts.json"), "w"))


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2:])
