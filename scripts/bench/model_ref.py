#!/usr/bin/env python3
"""PyTorch eager reference for scripts/bench/model.sh: the same plain decoder (HF Qwen2ForCausalLM, SDPA
attention), same shapes and threads, training step = forward + backward + AdamW, tokens/s.
--device cuda --precision bf16: the same on a GPU under bf16 autocast (scripts/gpu/check.sh), timed after
torch.cuda.synchronize(), with PyTorch's default (foreach) AdamW there: the stronger baseline."""
import argparse
import resource
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

ap = argparse.ArgumentParser()
for k, v in dict(hidden=896, layers=4, heads=14, kv_heads=2, intermediate=4864, vocab=151655, seq=512, batch=1,
                 steps=5, warmup=2, threads=0).items():
    ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
ap.add_argument("--device", default="cpu")
ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
a = ap.parse_args()
dev = torch.device(a.device)


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)

if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
cfg = Qwen2Config(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
                  num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, tie_word_embeddings=True,
                  max_position_embeddings=32768)
model = Qwen2ForCausalLM._from_config(cfg, attn_implementation="sdpa").float().train().to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=False if dev.type == "cpu" else None)
ids = torch.randint(0, a.vocab, (a.batch, a.seq)).to(dev)
total = 0.0
for s in range(a.warmup + a.steps):
    sync()
    t0 = time.perf_counter()
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    sync()
    if s >= a.warmup:
        total += time.perf_counter() - t0
peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
print(f"train_step tokens/s {a.batch * a.seq * a.steps / total:.1f}  ({1e3 * total / a.steps:.1f} ms/step) pytorch eager {dev} {a.precision} peak memory {peak:.3f} GB")
