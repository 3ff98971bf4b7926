"""Why the shared-prefix PO step costs more than its token count says: CPU SDPA with `is_causal` vs the same causal
pattern passed as an explicit boolean mask (the shared layout must pass a mask), forward + backward of one layer's
attention at Phantom's doubled head dim. Used by docs/benchmarks.md.
    .venv/bin/python scripts/bench/sdpa_mask.py [--len 1856] [--threads 2]
"""
import argparse
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--len", type=int, default=1856)
ap.add_argument("--heads", type=int, default=14)
ap.add_argument("--kv-heads", type=int, default=2)
ap.add_argument("--head-dim", type=int, default=128)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=3)
a = ap.parse_args()
torch.set_num_threads(a.threads)
L = a.len


def run(mask, causal):
    q = torch.randn(1, a.heads, L, a.head_dim, requires_grad=True)
    k = torch.randn(1, a.kv_heads, L, a.head_dim, requires_grad=True)
    v = torch.randn(1, a.kv_heads, L, a.head_dim, requires_grad=True)
    ts = []
    for _ in range(a.steps + 1):
        t = time.perf_counter()
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                                             enable_gqa=True, scale=a.head_dim ** -0.5 * 2 ** 0.5)
        o.sum().backward()
        ts.append(time.perf_counter() - t)
    return sorted(ts[1:])[a.steps // 2] * 1e3


mask = torch.ones(L, L, dtype=torch.bool).tril().view(1, 1, L, L)
c, m = run(None, True), run(mask, False)
print(f"L {L}: is_causal {c:.0f} ms, explicit bool mask (same pattern) {m:.0f} ms per attention fwd+bwd ({m / c:.2f}x)")
