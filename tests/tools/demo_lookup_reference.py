#!/usr/bin/env python3
# Independent reference for docs/demo.md ("Why multiple-choice stays at chance"): trains an HF Qwen2ForCausalLM of the
# demo decoder's size with a plain PyTorch loop on the text-only option lookups of
#   .venv/bin/python scripts/make_demo_data.py --out runs/lookup-data --mc-share 0 --lookup-share 1.0 --train 1500 --val 200
# and prints held-out letter accuracy every 250 steps:
#   .venv/bin/python tests/tools/demo_lookup_reference.py runs/lookup-data STEPS [THREADS]   (env: LR, B, H, I, LAY, HEADS, KV)
# Does a same-size HF Qwen2 learn the text-only lookup task ("Which option is a dress?\nA. ..." -> letter)?
import json, sys, random, time, torch
from tokenizers import Tokenizer
from transformers import Qwen2Config, Qwen2ForCausalLM
torch.manual_seed(0); random.seed(0); torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
d = sys.argv[1]; steps = int(sys.argv[2])
tok = Tokenizer.from_file(f"{d}/tokenizer.json")
rows = [json.loads(l) for l in open(f"{d}/train.jsonl")]
rows = [r for r in rows if "image" not in r]
def enc(r):
    p = tok.encode(f"<|im_start|>user\n{r['question']}<|im_end|><|im_start|>assistant\n").ids
    a = tok.encode(r["chosen"]).ids + tok.encode("<|im_end|>").ids
    return p, a
data = [enc(r) for r in rows]
test = data[-200:]; data = data[:-200]
import os
E = lambda k, v: type(v)(os.environ.get(k, v))
LR = E("LR", 1e-3); B = E("B", 8)
cfg = Qwen2Config(vocab_size=1024, hidden_size=E("H", 128), intermediate_size=E("I", 384), num_hidden_layers=E("LAY", 4),
                  num_attention_heads=E("HEADS", 4), num_key_value_heads=E("KV", 2), max_position_embeddings=512, tie_word_embeddings=True, use_sliding_window=False)
m = Qwen2ForCausalLM(cfg)
opt = torch.optim.AdamW(m.parameters(), lr=LR, weight_decay=0.01)
def batch(items):
    L = max(len(p) + len(a) for p, a in items)
    ids = torch.zeros(len(items), L, dtype=torch.long); lab = torch.full((len(items), L), -100); att = torch.zeros(len(items), L, dtype=torch.long)
    for i, (p, a) in enumerate(items):
        s = p + a; ids[i, :len(s)] = torch.tensor(s); att[i, :len(s)] = 1; lab[i, len(p):len(s)] = torch.tensor(a)
    return ids, att, lab
def acc():
    m.eval(); right = 0
    with torch.no_grad():
        for i in range(0, len(test), 50):
            items = test[i:i+50]
            for p, a in items:
                out = m(torch.tensor([p])).logits[0, -1]
                right += int(out.argmax()) == a[0]
    m.train(); return right / len(test)
t0 = time.time(); order = []
for step in range(1, steps + 1):
    if not order: order = list(range(len(data))); random.shuffle(order)
    idx = [order.pop() for _ in range(min(B, len(order)))]
    ids, att, lab = batch([data[i] for i in idx])
    for g in opt.param_groups: g["lr"] = LR * min(1, step / 10)
    loss = m(input_ids=ids, attention_mask=att, labels=lab).loss
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    if step % 250 == 0: print(step, f"loss {loss.item():.3f} test-acc {acc():.3f} {time.time()-t0:.0f}s", flush=True)
