#!/usr/bin/env python3
"""Builds the demo's real dataset from Debian's dataset-fashion-mnist (Zalando product photos, 10 classes).

    scripts/make_demo_data.py --out runs/demo-data [--train 3000 --val 200 --test 500 --seed 0]

Writes, idempotently (a stamp file records the arguments):
  images/{train,test}/NNNNN.png   28x28 grayscale product photos
  train.jsonl, val.jsonl          Phantom preference triples: a question about the item, the correct class as the
                                  chosen answer, a confusable class (shirt vs T-shirt, pullover vs coat, sneaker vs
                                  ankle boot, ...) as the rejected one, in the same answer template
  mc_test.tsv                     a multiple-choice benchmark from the test split in MMBench's TSV format
                                  (index, question, A-D, answer, category, image as base64 PNG)
  tokenizer.json                  a byte-level BPE tokenizer (Qwen2-style pre-tokenizer) trained on the texts, with
                                  the chat and image special tokens

A tool, not part of the framework (which is C++): Python reads the gzip'd IDX files and trains the tokenizer.
"""
import argparse
import base64
import gzip
import io
import json
import os
import random
import struct

from PIL import Image

SRC = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
# Classes a model (or a person) confuses with each class: the "incorrect and ambiguous" answers.
CONFUSABLE = {0: [6, 2], 1: [3], 2: [4, 6], 3: [4, 0], 4: [2, 6], 5: [7, 9], 6: [0, 2, 4], 7: [9, 5], 8: [2, 3],
              9: [7, 5]}
QUESTIONS = ["What item is shown in this picture?", "Which product category does this photo belong to?",
             "What kind of clothing or accessory is this?", "Name the article in the image.",
             "What is this product?", "Identify the item in the photo.", "What does this image show?",
             "Which item of the catalogue is this?"]
ANSWERS = ["It is a {}.", "This is a {}.", "The image shows a {}.", "A {}.", "The photo shows a {}."]
# Words that are no catalogue item: the "filler" options of the easier multiple-choice questions (--filler-share).
FILLERS = ["apple", "car", "tree", "dog", "house", "cup", "chair", "bird", "lamp", "clock", "boat", "horse"]
MC_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"]
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
               r"|\s+(?!\S)|\s+")


def read_idx(name):
    with gzip.open(os.path.join(SRC, name), "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return [data[16 + i * rows * cols:16 + (i + 1) * rows * cols] for i in range(n)], (cols, rows)
    return list(data[8:8 + n]), None


def article(name):
    return ("an " if name[0].lower() in "aeiou" else "a ") + name


def answer(template, cls):
    return template.replace("a {}", article(CLASSES[cls])) if "a {}" in template else template.format(CLASSES[cls])


def mc_question(rng, cls, question=None, fillers=0):
    """A 4-option question (paper MC format): the class, a confusable class and two others, shuffled. With
    `fillers` (1-3), that many of the wrong options are words that are no catalogue item (easier questions: the
    model learns to find an option and answer its letter before it has to tell similar items apart)."""
    others = [c for c in range(10) if c != cls and c not in CONFUSABLE[cls]]
    confusable = rng.choice(CONFUSABLE[cls])
    wrong = [confusable] + rng.sample(others, 2)
    options = [cls] + wrong[:3 - fillers] + [10 + f for f in rng.sample(range(len(FILLERS)), fillers)]
    rng.shuffle(options)
    name = lambda o: CLASSES[o] if o < 10 else FILLERS[o - 10]
    q = (question or rng.choice(QUESTIONS[:3])) + "\n" + "\n".join(f"{'ABCD'[i]}. {name(o)}" for i, o in enumerate(options))
    return q + MC_SUFFIX, options, "ABCD"[options.index(cls)], "ABCD"[options.index(wrong[0] if fillers < 3 else options[(options.index(cls) + 1) % 4])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/demo-data")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mc-share", type=float, default=0.5, help="share of multiple-choice triples (the rest are open)")
    ap.add_argument("--lookup-share", type=float, default=0.0,
                    help="share of text-only lookup triples ('Which option is the coat?' + options -> letter), "
                         "taken from the open ones")
    ap.add_argument("--filler-share", type=float, default=0.0,
                    help="share of the multiple-choice triples with 1-3 filler options (words that are no item)")
    args = ap.parse_args()
    stamp = os.path.join(args.out, ".stamp")
    key = json.dumps(vars(args), sort_keys=True)
    if os.path.exists(stamp) and open(stamp).read() == key:
        print(f"[demo-data] up to date in {args.out}")
        return
    rng = random.Random(args.seed)
    os.makedirs(os.path.join(args.out, "images", "train"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "images", "test"), exist_ok=True)
    texts = []

    def save(pixels, size, split, i):
        rel = f"images/{split}/{i:05d}.png"
        Image.frombytes("L", size, pixels).save(os.path.join(args.out, rel))
        return rel

    images, size = read_idx("train-images-idx3-ubyte.gz")
    labels, _ = read_idx("train-labels-idx1-ubyte.gz")
    order = list(range(len(images)))
    rng.shuffle(order)
    rows = []
    lookup_rel = args.lookup_share / max(1e-9, 1 - args.mc_share)  # share of the non-MC rows
    j = m = 0  # non-MC rows, MC rows so far
    for k, i in enumerate(order[: args.train + args.val]):
        cls = labels[i]
        is_mc = int((k + 1) * args.mc_share) > int(k * args.mc_share)
        is_lookup = not is_mc and int((j + 1) * lookup_rel) > int(j * lookup_rel)
        j += not is_mc
        if is_lookup:  # text only: the item is named, the model finds its option and answers the letter
            q, _, chosen, rejected = mc_question(rng, cls, f"Which option is {article(CLASSES[cls])}?")
            row = {"id": f"fmnist-lookup-{i}", "question": q, "chosen": chosen, "rejected": rejected,
                   "label": CLASSES[cls]}
            rows.append(row)
            texts += [q, chosen, rejected]
            continue
        if not is_mc:  # open question: the class in a sentence; the confusable class in the same sentence
            q, a = rng.choice(QUESTIONS), rng.choice(ANSWERS)
            chosen, rejected = answer(a, cls), answer(a, rng.choice(CONFUSABLE[cls]))
        else:  # multiple choice: the correct letter; the confusable option's letter
            m += 1  # MC rows so far
            fillers = 1 + (m % 3) if int(m * args.filler_share) > int((m - 1) * args.filler_share) else 0
            q, _, chosen, rejected = mc_question(rng, cls, fillers=fillers)
        row = {"id": f"fmnist-train-{i}", "image": save(images[i], size, "train", i), "question": q,
               "chosen": chosen, "rejected": rejected, "label": CLASSES[cls]}
        rows.append(row)
        texts += [q, row["chosen"], row["rejected"]]
    for name, part in (("train.jsonl", rows[: args.train]), ("val.jsonl", rows[args.train:])):
        with open(os.path.join(args.out, name), "w") as f:
            for r in part:
                f.write(json.dumps(r) + "\n")

    images, size = read_idx("t10k-images-idx3-ubyte.gz")
    labels, _ = read_idx("t10k-labels-idx1-ubyte.gz")
    with open(os.path.join(args.out, "mc_test.tsv"), "w") as f:
        f.write("index\tquestion\tA\tB\tC\tD\tanswer\tcategory\timage\n")
        for i in range(args.test):
            cls = labels[i]
            _, options, letter, _ = mc_question(rng, cls)
            buf = io.BytesIO()
            Image.frombytes("L", size, images[i]).save(buf, format="PNG")
            q = "What item is shown in this picture?"
            f.write("\t".join([str(i), q] + [CLASSES[o] for o in options] +
                              [letter, CLASSES[cls], base64.b64encode(buf.getvalue()).decode()]) + "\n")
            texts += [CLASSES[o] for o in options]
    texts += [f"{l}. {c}" for l in "ABCD" for c in CLASSES]
    texts += [MC_SUFFIX, "user", "assistant"]
    if args.filler_share > 0:
        texts += [f"{l}. {w}" for l in "ABCD" for w in FILLERS]

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab - len(SPECIALS), special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts * 3, trainer)
    tok.add_special_tokens(SPECIALS)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(stamp, "w") as f:
        f.write(key)
    print(f"[demo-data] {args.train} train / {args.val} val triples, {args.test} MC questions, "
          f"tokenizer of {tok.get_vocab_size()} tokens in {args.out}")


if __name__ == "__main__":
    main()
