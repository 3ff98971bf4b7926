#!/usr/bin/env python3
"""Golden answer tokens (tests/test_tokenizers.cpp, "in-context answer tokens"): the official concatenation of
prompt + answer, tokenised with HF tokenizers, and its label mask, for samples rendered through our chat templates.

    answer_tokens_reference.py FAMILIES_DIR        # a directory written by tokenizer_families.py

For each family directory (qwen2: byte-level tokenizer.json; internlm2: tokenizer.model through the slow
InternLM2Tokenizer; phi3: SentencePiece-style tokenizer.json; llama, internlm2_fast when present; and
internlm2_newlines, built here: the InternLM2 layout with a SentencePiece model that has pieces joining newlines
with what follows, as real vocabularies do, so that tokens straddle the prompt's end) and each sample:
  ids     AutoTokenizer(full string).input_ids, the string being the whole conversation as the official Phantom code
          (make_instruction_and_label) and InternVL's trainer build it: user turn (images first, as
          <img><IMG_CONTEXT>*n</img>), assistant start, answer, end token, next turn, ...
  labels  the ids of the tokens that belong to an answer: from the first token that ends after the answer's start
          (or an empty-span token at or after it) to the last one that begins before the end of its end token;
          -100 elsewhere. Token spans: the fast tokenizer's offset mapping, an added token narrowed to its own text
          (HF's span includes the whitespace its rstrip/lstrip swallows); for the slow InternLM2 tokenizer,
          SentencePiece's own spans of each segment between added tokens (the ids checked equal to the tokenizer's).
Preference samples: one such row per answer, and whether every answer leaves the same prompt ids.
Also measured, for docs/data.md: how many answers the per-segment encoding (prompt | answer | end tokenised apart)
changes, how many answers the official count mask (the first len(tokenize(prompt)) ids) masks differently from the
span rule, and how many answers have a straddling first token.
Writes FAMILIES_DIR/answers/samples.json and FAMILIES_DIR/answers/expected.json.
"""
import json
import os
import random
import re
import sys

TOKENS_PER_TILE = 4
TEMPLATES = {
    "chatml": ("<|im_start|>user\n", "<|im_end|>", "<|im_start|>assistant\n", "<|im_end|>"),
    "phi3": ("<|user|>\n", "<|end|>", "<|assistant|>\n", "<|end|>"),
}
FAMILY_TEMPLATE = {"qwen2": "chatml", "internlm2": "chatml", "internlm2_fast": "chatml", "phi3": "phi3", "llama": "phi3",
                   "internlm2_newlines": "chatml"}
# The tiny SentencePiece models learn no piece with a newline (the trainer reads one sentence per line); these,
# user-defined, join the prompt's last "\n" with an answer's first characters.
NEWLINE_PIECES = ["\n\n", "\nN", "\nT", "\n'"]

QUESTIONS = [
    "What is in the image?", "<image>\nWhat is this product?", "Größere Übungen kosten 12,50 € — naïve café.",
    "数据并行训练需要同步梯度。", "emoji 🙂🚀 and flags 🇩🇪?", "tabs\tand\t\ttabs, newlines\n\n\nand   spaces    ",
    " leading space", "\nleading newline", "Which option?\nA. shirt\nB. coat\nAnswer with the option's letter.",
    "Быстрая лиса 1234567890", "한국어 العربية ελληνικά", "trailing newline\n", "x", "trailing spaces   ",
    "Describe <image> briefly.", "it's", "ends with a dash -", "What's 2+2?",
]
ANSWERS = [
    "It is a shirt.", "B", " Ja, 12,50 €.", "東京です。\n\nSecond paragraph.", "🙂", "  two leading spaces",
    "\nNewline first.", "\n\nTwo newlines first", "A.", "(B) coat", "yes", "No.\n", "数据", "'s fine", "'re here",
    "▁literal marker", "<0x41> literal", "12,50", "\t tab first", "ends with spaces  ", "Ü-umlaut", "🧠 rare emoji",
    "a\nb\nc", "...", "The answer is 4.",
]


def render_user(question, tiles, first, placement="prepend"):
    """Our first_turn rule (docs/data.md): placeholders (with a newline after them) removed, every image first."""
    text = re.sub(r"<image>\n?", "", question)
    if first and tiles:
        text = ("<image>" if placement == "prepend" else "<image>\n") * len(tiles) + text
    for n in tiles if first else []:
        text = text.replace("<image>", "<img>" + "<IMG_CONTEXT>" * (TOKENS_PER_TILE * n) + "</img>", 1)
    return text


def samples():
    rnd = random.Random(1234)
    out = []
    tile_sets = [[], [1], [2, 1]]
    for qi, q in enumerate(QUESTIONS):  # one turn: every question x answer, images cycling
        for ai, a in enumerate(ANSWERS):
            tiles = tile_sets[(qi + ai) % 3]
            if "<image>" in q and not tiles:
                tiles = [1]
            out.append({"kind": "conversation", "turns": [q, a], "tiles": tiles})
    for _ in range(300):  # several turns
        n = rnd.choice([2, 3])
        turns = []
        for t in range(n):
            turns += [rnd.choice(QUESTIONS).replace("<image>", "") if t else rnd.choice(QUESTIONS), rnd.choice(ANSWERS)]
        tiles = [1] if "<image>" in turns[0] else rnd.choice(tile_sets)
        out.append({"kind": "conversation", "turns": turns, "tiles": tiles})
    for _ in range(300):  # preference: chosen + one or two rejected
        q = rnd.choice(QUESTIONS)
        answers = rnd.sample(ANSWERS, rnd.choice([2, 3]))
        tiles = [1] if "<image>" in q else rnd.choice(tile_sets)
        out.append({"kind": "preference", "question": q, "chosen": answers[0], "rejected": answers[1:], "tiles": tiles})
    return out


class Spans:
    """Token ids and character spans of a text, the family's reference tokenizer."""

    def __init__(self, family, d):
        from transformers import AutoTokenizer
        self.tok = AutoTokenizer.from_pretrained(d, trust_remote_code=True)
        self.slow = family.startswith("internlm2") and family != "internlm2_fast"
        if self.slow:
            import sentencepiece as spm
            self.sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
            added = sorted(self.tok.added_tokens_encoder, key=len, reverse=True)
            self.split_re = re.compile("(" + "|".join(re.escape(t) for t in added) + ")")

    def encode(self, text):
        ids = self.tok.encode(text, add_special_tokens=False)
        if self.slow:
            spans, got, pos = [], [], 0
            for seg in self.split_re.split(text):
                if not seg:
                    continue
                if seg in self.tok.added_tokens_encoder:
                    got.append(self.tok.added_tokens_encoder[seg])
                    spans.append((pos, pos + len(seg)))
                else:
                    for p in self.sp.encode(seg, out_type="immutable_proto").pieces:
                        got.append(p.id)
                        spans.append((pos + p.begin, pos + p.end))
                pos += len(seg)
            assert got == ids, "SentencePiece segments disagree with the slow tokenizer"
            return ids, spans
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        assert enc.input_ids == ids
        spans = []
        for i, (s, e) in zip(ids, enc.offset_mapping):
            if i in self.tok.added_tokens_decoder:  # the added token's own text, not the whitespace it swallowed
                content = self.tok.added_tokens_decoder[i].content
                k = text.find(content, s, max(e, s + len(content)))
                if k >= 0:
                    s, e = k, k + len(content)
            spans.append((s, e))
        return ids, spans


def first_answer_token(spans, start, prompt_end):
    k = start
    while k < len(spans) and spans[k][1] <= prompt_end and not (spans[k][0] == spans[k][1] and spans[k][0] >= prompt_end):
        k += 1
    return k


def label(ids, spans, answers):
    """answers: [(prompt end, answer end)] in characters. Returns labels and the straddling count."""
    labels, k, straddling = [-100] * len(ids), 0, 0
    for p, a in answers:
        k = first_answer_token(spans, k, p)
        if k < len(spans) and spans[k][0] < p:
            straddling += 1
        while k < len(spans) and spans[k][0] < a:
            labels[k] = ids[k]
            k += 1
    return labels, straddling


def conversation_string(turns, tiles, tmpl):
    u, ue, a, ae = TEMPLATES[tmpl]
    text, answers, prompts = "", [], []
    for i in range(0, len(turns), 2):
        text += u + render_user(turns[i], tiles, i == 0) + ue + a
        prompts.append(text)
        if i + 1 < len(turns):
            p = len(text)
            text += turns[i + 1] + ae
            answers.append((p, len(text)))
    return text, answers


def family_reference(family, d, items, stats):
    tok = Spans(family, d)
    tmpl = FAMILY_TEMPLATE[family]
    u, ue, a_start, ae = TEMPLATES[tmpl]
    enc = lambda s: tok.tok.encode(s, add_special_tokens=False)
    out = []
    for it in items:
        if it["kind"] == "conversation":
            text, answers = conversation_string(it["turns"], it["tiles"], tmpl)
            ids, spans = tok.encode(text)
            labels, st = label(ids, spans, answers)
            out.append({"ids": ids, "labels": labels})
            stats["answers"] += len(answers)
            stats["straddling"] += st
            # Per-segment encoding and the official count mask, measured on one-turn samples.
            if len(it["turns"]) == 2:
                prompt = text[:answers[0][0]]
                per_segment = enc(prompt) + enc(it["turns"][1]) + enc(ae)
                stats["per_segment_differs"] += per_segment != ids
                official = [-100] * len(enc(prompt)) + ids[len(enc(prompt)):]
                stats["count_mask_differs"] += official != labels
                stats["one_turn"] += 1
        else:
            prompt = u + render_user(it["question"], it["tiles"], True) + ue + a_start
            rows, prompts = [], []
            for ans in [it["chosen"]] + it["rejected"]:
                text = prompt + ans + ae
                ids, spans = tok.encode(text)
                labels, st = label(ids, spans, [(len(prompt), len(text))])
                k = next(i for i, x in enumerate(labels) if x != -100)
                rows.append({"ids": ids, "labels": labels})
                prompts.append(ids[:k])
                stats["answers"] += 1
                stats["straddling"] += st
            shared = all(p == prompts[0] for p in prompts)
            stats["preference_questions"] += 1
            stats["unshared_prompts"] += not shared
            out.append({"rows": rows, "shared": shared})
    return out


def build_internlm2_newlines(fam_dir):
    """tokenizer_families.py's InternLM2 layout around a SentencePiece model with NEWLINE_PIECES."""
    import sentencepiece as spm
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tokenizer_families as tf
    d = os.path.join(fam_dir, "internlm2_newlines")
    os.makedirs(d, exist_ok=True)
    prefix = os.path.join(fam_dir, "spm_newlines")
    spm.SentencePieceTrainer.train(input=os.path.join(fam_dir, "spm.txt"), model_prefix=prefix, vocab_size=1500,
                                   model_type="bpe", character_coverage=0.9995, byte_fallback=True,
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   split_digits=True, allow_whitespace_only_pieces=True,
                                   user_defined_symbols=tf.CHATML + NEWLINE_PIECES, minloglevel=2)
    tf.build_internlm2(prefix + ".model", d)


def main(fam_dir):
    items = samples()
    build_internlm2_newlines(fam_dir)
    out_dir = os.path.join(fam_dir, "answers")
    os.makedirs(out_dir, exist_ok=True)
    os.environ["HF_MODULES_CACHE"] = os.path.join(fam_dir, "hf_modules")
    expected = {}
    for family in ("qwen2", "internlm2", "phi3", "llama", "internlm2_fast", "internlm2_newlines"):
        d = os.path.join(fam_dir, family)
        if not os.path.isdir(d):
            continue
        stats = {k: 0 for k in ("answers", "straddling", "preference_questions", "unshared_prompts", "one_turn",
                                "per_segment_differs", "count_mask_differs")}
        expected[family] = {"samples": family_reference(family, d, items, stats), "stats": stats}
        print(family, json.dumps(stats))
    json.dump(items, open(os.path.join(out_dir, "samples.json"), "w"))
    json.dump(expected, open(os.path.join(out_dir, "expected.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
