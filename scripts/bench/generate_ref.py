#!/usr/bin/env python3
"""HF reference for scripts/bench/generate.sh: `generate` of transformers on the model `phantom bench generate
--save DIR` wrote (same weights, same prompts, same beams, no eos), tokens/s, and whether the ids agree."""
import argparse
import time

import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("dir")
for k, v in dict(batch=8, seq=64, new_tokens=32, beams=3, steps=3, warmup=1, threads=0).items():
    ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
model = AutoModelForCausalLM.from_pretrained(a.dir, dtype=torch.float32, attn_implementation="sdpa").eval()
V = model.config.vocab_size
ids = torch.tensor([[10 + (31 * b + 7 * t) % (V - 10) for t in range(a.seq)] for b in range(a.batch)])
kw = dict(max_new_tokens=a.new_tokens, num_beams=a.beams, do_sample=False, early_stopping=True, length_penalty=1.0,
          eos_token_id=None, pad_token_id=0, attention_mask=torch.ones_like(ids))
total = 0.0
with torch.no_grad():
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        out = model.generate(ids, **kw)
        if s >= a.warmup:
            total += time.perf_counter() - t0
gen = out[:, a.seq:]
ours = [list(map(int, l.split())) for l in open(f"{a.dir}/generated.txt")]
same = sum(ours[b] == gen[b].tolist() for b in range(a.batch))
print(f"generate tokens/s {gen.numel() * a.steps / total:.1f}  ({1e3 * total / a.steps:.1f} ms/run) HF transformers "
      f"{__import__('transformers').__version__}; same ids as ours for {same}/{a.batch} prompts")
