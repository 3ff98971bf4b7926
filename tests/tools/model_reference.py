#!/usr/bin/env python3
"""Reference outputs for the model tests (tests/test_model.cpp). Python is the oracle here, never the framework.

    model_reference.py hf-llm   --family qwen2|phi3|internlm2 --out DIR   # tiny HF model + logits (+ generate)
    model_reference.py phantom  --out DIR [--eta E] [--mode gate|sum|mean|off] [--kv-heads K]
    model_reference.py vision   --out DIR
    model_reference.py check-saved  --out DIR    # our text-only export vs our logits
    model_reference.py check-merged --out DIR    # our full VLM export (merge-lora) vs our logits, image included
    model_reference.py check-peft   --out DIR    # our PEFT adapter file: base + s*B@A = the merged weights

Every command writes DIR/model (a checkpoint directory: config.json + model.safetensors) and DIR/expected.safetensors.
"""
import argparse
import json
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

torch.set_num_threads(2)


def tiny_llm_config(family, kv_heads=2, tie=None):
    base = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=128,
                rms_norm_eps=1e-6, rope_theta=10000.0, attn_implementation="eager")
    if family == "qwen2":
        from transformers import Qwen2Config
        return Qwen2Config(**base, tie_word_embeddings=True if tie is None else tie, use_sliding_window=False)
    if family == "phi3":
        from transformers import Phi3Config
        half = base["hidden_size"] // base["num_attention_heads"] // 2
        return Phi3Config(**{**base, "max_position_embeddings": 128}, original_max_position_embeddings=32,
                          tie_word_embeddings=False if tie is None else tie, pad_token_id=0, sliding_window=None,
                          bos_token_id=1, eos_token_id=2,  # the defaults (32000) lie outside this small vocabulary
                          rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(half)],
                                        "long_factor": [1.5 + 0.25 * i for i in range(half)]})
    raise ValueError(family)


def batch_inputs(vocab, seed=7):
    """Three sequences of different lengths: right padded and left padded versions of the same rows."""
    g = torch.Generator().manual_seed(seed)
    lengths = [40, 25, 33]
    L = max(lengths)
    ids = torch.randint(3, vocab, (len(lengths), L), generator=g)
    right = torch.zeros(len(lengths), L, dtype=torch.long)
    left = torch.zeros(len(lengths), L, dtype=torch.long)
    ids_left = torch.zeros_like(ids)
    for b, n in enumerate(lengths):
        right[b, :n] = 1
        left[b, L - n:] = 1
        ids_left[b, L - n:] = ids[b, :n]
    return ids * right, right, ids_left, left


def hf_positions(mask):
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


def cmd_hf_llm(args):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(args.seed)
    family = "qwen2" if args.family == "internlm2" else args.family
    cfg = tiny_llm_config(family, kv_heads=2, tie=False if args.family == "internlm2" else None)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    with torch.no_grad():  # random but not tiny: make every parameter matter
        for n, p in model.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
            elif n.endswith("bias"):
                p.normal_(0, 0.1)
    out_dir = os.path.join(args.out, "model")
    if args.family == "internlm2":
        # Layout test: repack the Qwen2-layout weights (bias-free q/k/v) into InternLM2's names and interleaved wqkv.
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.zero_()
        write_internlm2(model, cfg, out_dir)
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
    ids_r, mask_r, ids_l, mask_l = batch_inputs(cfg.vocab_size)
    expected = {"ids_right": ids_r, "mask_right": mask_r, "ids_left": ids_l, "mask_left": mask_l}
    with torch.no_grad():
        expected["logits_right"] = model(input_ids=ids_r, attention_mask=mask_r, position_ids=hf_positions(mask_r)).logits
        expected["logits_left"] = model(input_ids=ids_l, attention_mask=mask_l, position_ids=hf_positions(mask_l)).logits
        # A long row (> original_max_position_embeddings of the Phi-3 config: the longrope long factors).
        long_ids = torch.randint(3, cfg.vocab_size, (1, 90), generator=torch.Generator().manual_seed(3))
        expected["ids_long"] = long_ids
        expected["logits_long"] = model(input_ids=long_ids).logits
        if args.generate:
            prompt = ids_l[:, -12:].clone()
            pmask = mask_l[:, -12:].clone()
            prompt[1, :4] = 0  # a left-padded row
            pmask[1, :4] = 0
            expected["gen_prompt"], expected["gen_mask"] = prompt, pmask
            common = dict(attention_mask=pmask, max_new_tokens=20, min_new_tokens=20, do_sample=False,
                          pad_token_id=0, eos_token_id=None)
            expected["gen_greedy"] = model.generate(prompt, num_beams=1, **common)
            expected["gen_beam3"] = model.generate(prompt, num_beams=3, length_penalty=1.0, early_stopping=True,
                                                   **{**common, "min_new_tokens": 0, "eos_token_id": args.eos})
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(args.out, "expected.safetensors"))


def write_internlm2(model, cfg, out_dir):
    H, Hk = cfg.num_attention_heads, cfg.num_key_value_heads
    D = cfg.hidden_size // H
    g = H // Hk
    sd = {}
    for n, p in model.state_dict().items():
        p = p.clone()
        n2 = n.replace("model.embed_tokens.", "model.tok_embeddings.").replace("lm_head.", "output.")
        if ".self_attn.q_proj.weight" in n:
            i = n.split(".")[2]
            pre = f"model.layers.{i}."
            q = p.view(Hk, g, D, -1)
            k = model.state_dict()[pre + "self_attn.k_proj.weight"].view(Hk, 1, D, -1)
            v = model.state_dict()[pre + "self_attn.v_proj.weight"].view(Hk, 1, D, -1)
            sd[pre + "attention.wqkv.weight"] = torch.cat([q, k, v], 1).reshape(-1, cfg.hidden_size).contiguous()
            continue
        if any(s in n for s in (".k_proj.", ".v_proj.", ".q_proj.bias")):
            continue
        n2 = (n2.replace(".self_attn.o_proj.", ".attention.wo.").replace(".mlp.gate_proj.", ".feed_forward.w1.")
              .replace(".mlp.up_proj.", ".feed_forward.w3.").replace(".mlp.down_proj.", ".feed_forward.w2.")
              .replace(".input_layernorm.", ".attention_norm.").replace(".post_attention_layernorm.", ".ffn_norm."))
        sd[n2] = p.contiguous()
    os.makedirs(out_dir, exist_ok=True)
    save_file(sd, os.path.join(out_dir, "model.safetensors"))
    conf = dict(architectures=["InternLM2ForCausalLM"], model_type="internlm2", vocab_size=cfg.vocab_size,
                hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=H, num_key_value_heads=Hk,
                max_position_embeddings=cfg.max_position_embeddings, rms_norm_eps=cfg.rms_norm_eps,
                rope_theta=cfg.rope_theta, bias=False, tie_word_embeddings=False, rope_scaling=None)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)


# ---- an independent, straightforward Phantom decoder (docs/paper.md, "Phantom dimension") --------------------------------------------------

def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope(x, pos, theta):
    D = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, D, 2).float() / D))
    ang = pos.float()[..., None] * inv                    # (B, L, D/2)
    cos, sin = torch.cat([ang, ang], -1).cos()[:, :, None], torch.cat([ang, ang], -1).sin()[:, :, None]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def xattn(W, pre, x, s, D):
    """Attention of every position's heads over the sos token's heads."""
    q = F.gelu(x @ W[pre + "linear_q.weight"].T)           # (B, L, H, D)
    k = F.gelu(s @ W[pre + "linear_k.weight"].T)           # (B, Hs, D)
    v = F.gelu(s @ W[pre + "linear_v.weight"].T)
    p = torch.softmax(torch.einsum("blhd,bgd->blhg", q, k) / math.sqrt(D), -1)
    return F.gelu(torch.einsum("blhg,bgd->blhd", p, v) @ W[pre + "linear_o.weight"].T)


def phantom_forward(W, c, ids, mask, mode, eta, repeat_first=False, embeds=None):
    B, L = ids.shape
    H, Hk = c["num_attention_heads"], c["num_key_value_heads"]
    D = c["hidden_size"] // H
    eps = c["rms_norm_eps"]
    pos = hf_positions(mask)
    sos = torch.tensor([int(mask[b].nonzero()[0]) for b in range(B)])
    x = W["model.embed_tokens.weight"][ids] if embeds is None else embeds
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        h = rms(x, W[p + "input_layernorm.weight"], eps)
        q = (h @ W[a + "q_proj.weight"].T + W[a + "q_proj.bias"]).view(B, L, H, D)
        k = (h @ W[a + "k_proj.weight"].T + W[a + "k_proj.bias"]).view(B, L, Hk, D)
        v = (h @ W[a + "v_proj.weight"].T + W[a + "v_proj.bias"]).view(B, L, Hk, D)
        q, k = rope(q, pos, c["rope_theta"]), rope(k, pos, c["rope_theta"])
        kv_head = torch.arange(H) // (H // Hk)             # query head -> its kv head
        if repeat_first:  # the official code repeats kv heads before XAttn
            k, v = k[:, :, kv_head], v[:, :, kv_head]
        if mode != "off":
            qs = torch.stack([q[b, sos[b]] for b in range(B)])  # (B, H, D)
            ks = torch.stack([k[b, sos[b]] for b in range(B)])
            vs = torch.stack([v[b, sos[b]] for b in range(B)])
            q = torch.cat([q, eta * xattn(W, a + "xattn_query_phantom.", q, qs, D)], -1)
            k = torch.cat([k, eta * xattn(W, a + "xattn_key_phantom.", k, ks, D)], -1)
            v = torch.cat([v, v + eta * xattn(W, a + "xattn_value_phantom.", v, vs, D)], -1)
        if not repeat_first:
            k, v = k[:, :, kv_head], v[:, :, kv_head]
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(D)
        allowed = torch.ones(L, L).tril().bool()[None] & mask.bool()[:, None, :]   # (B, Lq, Lk)
        allowed = allowed | (torch.eye(L).bool()[None] & ~allowed.any(-1, keepdim=True))
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        o2 = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(s, -1), v)
        if mode == "off":
            o = o2
        else:
            o_bar, o_til = o2[..., :D], o2[..., D:]
            if mode == "gate":
                f = o_bar @ W[a + "gating_phantom_1.weight"].T + W[a + "gating_phantom_1.bias"]
                g_ = o_til @ W[a + "gating_phantom_2.weight"].T + W[a + "gating_phantom_2.bias"]
                w = f.exp() / (f.exp() + g_.exp())
                o = w * o_bar + (1 - w) * o_til
            elif mode == "sum":
                o = o_bar + o_til
            else:
                o = (o_bar + o_til) / 2
        x = x + o.reshape(B, L, H * D) @ W[a + "o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        m = p + "mlp."
        x = x + (F.silu(h @ W[m + "gate_proj.weight"].T) * (h @ W[m + "up_proj.weight"].T)) @ W[m + "down_proj.weight"].T
    x = rms(x, W["model.norm.weight"], eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    return x @ head.T


def cmd_phantom(args):
    from transformers import Qwen2ForCausalLM
    torch.manual_seed(args.seed)
    cfg = tiny_llm_config("qwen2", kv_heads=args.kv_heads)
    model = Qwen2ForCausalLM(cfg).float()
    W = {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    D = cfg.hidden_size // cfg.num_attention_heads
    g = torch.Generator().manual_seed(args.seed + 1)
    for n in list(W):
        if "norm" in n:
            W[n] = torch.rand(W[n].shape, generator=g) + 0.5
        elif n.endswith("bias"):
            W[n] = torch.randn(W[n].shape, generator=g) * 0.1
    for i in range(cfg.num_hidden_layers):
        a = f"model.layers.{i}.self_attn."
        for x in ("query", "key", "value"):
            for l in "qkvo":
                W[f"{a}xattn_{x}_phantom.linear_{l}.weight"] = torch.randn(D, D, generator=g) / math.sqrt(D) * 2
        for j in (1, 2):
            W[f"{a}gating_phantom_{j}.weight"] = torch.randn(1, D, generator=g)
            W[f"{a}gating_phantom_{j}.bias"] = torch.randn(1, generator=g)
    out_dir = os.path.join(args.out, "model")
    os.makedirs(out_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in W.items()}, os.path.join(out_dir, "model.safetensors"))
    cfg.save_pretrained(out_dir)
    c = json.load(open(os.path.join(out_dir, "config.json")))
    expected = {}
    gr = torch.Generator().manual_seed(11)
    for side, (ids, mask) in {"right": batch_inputs(cfg.vocab_size)[:2], "left": batch_inputs(cfg.vocab_size)[2:]}.items():
        P = {k: v.clone().requires_grad_(True) for k, v in W.items()}
        logits = phantom_forward(P, c, ids, mask, args.mode, args.eta, args.repeat_first)
        R = torch.randn(logits.shape, generator=gr)
        expected[f"ids_{side}"], expected[f"mask_{side}"] = ids, mask
        expected[f"logits_{side}"] = logits.detach()
        expected[f"weights_{side}"] = R
        loss = (logits * R * mask[..., None]).sum()
        loss.backward()
        for k, v in P.items():
            if v.grad is not None:
                expected[f"grad_{side}.{k}"] = v.grad
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(args.out, "expected.safetensors"))


# ---- InternViT + pixel shuffle + projector, written out plainly ----------------------------------------------------

def vit_forward(W, c, pixels):
    C, H = c["hidden_size"], c["num_attention_heads"]
    D = C // H
    p = F.conv2d(pixels, W["vision_model.embeddings.patch_embedding.weight"],
                 W["vision_model.embeddings.patch_embedding.bias"], stride=c["patch_size"])
    N, _, gh, gw = p.shape
    x = torch.cat([W["vision_model.embeddings.class_embedding"].expand(N, 1, C), p.flatten(2).transpose(1, 2)], 1)
    pe = W["vision_model.embeddings.position_embedding"]
    G = c["image_size"] // c["patch_size"]
    grid = pe[:, 1:].reshape(1, G, G, C).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False).reshape(1, C, -1).permute(0, 2, 1)
    x = x + torch.cat([pe[:, :1], grid], 1)
    for i in range(c["num_hidden_layers"]):
        pre = f"vision_model.encoder.layers.{i}."
        h = F.layer_norm(x, (C,), W[pre + "norm1.weight"], W[pre + "norm1.bias"], c["layer_norm_eps"])
        qkv = (h @ W[pre + "attn.qkv.weight"].T + W[pre + "attn.qkv.bias"]).view(N, -1, 3, H, D)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        a = torch.softmax(torch.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(D), -1)
        o = torch.einsum("nhqk,nkhd->nqhd", a, v).reshape(N, -1, C)
        x = x + (o @ W[pre + "attn.proj.weight"].T + W[pre + "attn.proj.bias"]) * W[pre + "ls1"]
        h = F.layer_norm(x, (C,), W[pre + "norm2.weight"], W[pre + "norm2.bias"], c["layer_norm_eps"])
        h = F.gelu(h @ W[pre + "mlp.fc1.weight"].T + W[pre + "mlp.fc1.bias"]) @ W[pre + "mlp.fc2.weight"].T + W[pre + "mlp.fc2.bias"]
        x = x + h * W[pre + "ls2"]
    x = x[:, 1:]
    s = int(round(x.shape[1] ** 0.5))
    x = x.reshape(N, s, s, C)
    # pixel shuffle, ratio 0.5, exactly docs/paper.md, "Model"
    x = x.reshape(N, s, s // 2, C * 2).permute(0, 2, 1, 3).reshape(N, s // 2, s // 2, C * 4).permute(0, 2, 1, 3)
    x = x.reshape(N, -1, C * 4)
    x = F.layer_norm(x, (C * 4,), W["vision_proj.0.weight"], W["vision_proj.0.bias"], 1e-5)
    x = F.gelu(x @ W["vision_proj.1.weight"].T + W["vision_proj.1.bias"])
    return x @ W["vision_proj.3.weight"].T + W["vision_proj.3.bias"]


def cmd_vision(args):
    g = torch.Generator().manual_seed(args.seed)
    c = dict(hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=2, image_size=56,
             patch_size=14, layer_norm_eps=1e-6, norm_type="layer_norm", qk_normalization=False, qkv_bias=True)
    C, d = c["hidden_size"], 48
    W = {"vision_model.embeddings.patch_embedding.weight": torch.randn(C, 3, 14, 14, generator=g) * 0.05,
         "vision_model.embeddings.patch_embedding.bias": torch.randn(C, generator=g) * 0.1,
         "vision_model.embeddings.class_embedding": torch.randn(1, 1, C, generator=g),
         "vision_model.embeddings.position_embedding": torch.randn(1, 17, C, generator=g)}
    for i in range(c["num_hidden_layers"]):
        pre = f"vision_model.encoder.layers.{i}."
        for n, shape in (("norm1.weight", (C,)), ("norm1.bias", (C,)), ("norm2.weight", (C,)), ("norm2.bias", (C,)),
                         ("attn.qkv.weight", (3 * C, C)), ("attn.qkv.bias", (3 * C,)), ("attn.proj.weight", (C, C)),
                         ("attn.proj.bias", (C,)), ("mlp.fc1.weight", (64, C)), ("mlp.fc1.bias", (64,)),
                         ("mlp.fc2.weight", (C, 64)), ("mlp.fc2.bias", (C,)), ("ls1", (C,)), ("ls2", (C,))):
            W[pre + n] = torch.randn(*shape, generator=g) * (0.2 if len(shape) == 2 else 0.5) + (1.0 if "norm" in n and "weight" in n else 0.0)
    for n, shape in (("vision_proj.0.weight", (4 * C,)), ("vision_proj.0.bias", (4 * C,)),
                     ("vision_proj.1.weight", (d, 4 * C)), ("vision_proj.1.bias", (d,)),
                     ("vision_proj.3.weight", (d, d)), ("vision_proj.3.bias", (d,))):
        W[n] = torch.randn(*shape, generator=g) * 0.2 + (1.0 if n == "vision_proj.0.weight" else 0.0)
    out_dir = os.path.join(args.out, "model")
    os.makedirs(out_dir, exist_ok=True)
    save_file(W, os.path.join(out_dir, "model.safetensors"))
    pixels = torch.randn(3, 3, 56, 56, generator=g)
    pixels_big = torch.randn(2, 3, 84, 84, generator=g)  # 6x6 patch grid: interpolated position embedding
    expected = {"pixels": pixels, "out": vit_forward(W, c, pixels), "pixels_big": pixels_big,
                "out_big": vit_forward(W, c, pixels_big)}
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(args.out, "expected.safetensors"))
    json.dump({"vision": c, "llm_hidden": d}, open(os.path.join(args.out, "vision.json"), "w"))


def cmd_check_saved(args):
    """Loads a checkpoint written by our C++ with the Python side and compares logits with the C++ ones."""
    d = os.path.join(args.out, "saved")
    c = json.load(open(os.path.join(d, "config.json")))
    W = load_file(os.path.join(d, "model.safetensors"))
    exp = load_file(os.path.join(args.out, "cpp_logits.safetensors"))
    if "llm_config" in c:  # a Phantom checkpoint: language_model.* in HF Qwen2 names
        W = {k[len("language_model."):]: v for k, v in W.items() if k.startswith("language_model.")}
        c = c["llm_config"]
        got = phantom_forward(W, c, exp["ids"], exp["mask"], args.mode, args.eta)
    else:  # a bare LLM: HF transformers itself loads it
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").float().eval()
        with torch.no_grad():
            got = model(input_ids=exp["ids"], attention_mask=exp["mask"], position_ids=hf_positions(exp["mask"])).logits
    m = exp["mask"].bool()
    diff = (got - exp["logits"]).abs()[m].max().item()
    print(f"max abs diff {diff:.3e}")
    raise SystemExit(0 if diff < 1e-4 else 1)


def cmd_check_merged(args):
    """A whole Phantom checkpoint written by our C++ (phantom convert merge-lora): InternViT, pixel shuffle and the
    projector, visual tokens spliced at <IMG_CONTEXT>, the Phantom decoder; compared with the C++ logits of the
    unmerged (adapter) model. Only the HF files are read: config.json and model.safetensors."""
    d = os.path.join(args.out, "merged")
    c = json.load(open(os.path.join(d, "config.json")))
    W = load_file(os.path.join(d, "model.safetensors"))
    exp = load_file(os.path.join(args.out, "cpp_logits.safetensors"))
    with torch.no_grad():
        visual = vit_forward(W, c["vision_config"], exp["pixels"])          # (tiles, tokens, d)
        L = {k[len("language_model."):]: v for k, v in W.items() if k.startswith("language_model.")}
        ids = exp["ids"]
        emb = L["model.embed_tokens.weight"][ids].clone()
        sel = ids == c["image_token_index"]
        assert int(sel.sum()) == visual.shape[0] * visual.shape[1], (int(sel.sum()), visual.shape)
        emb[sel] = visual.reshape(-1, visual.shape[-1])
        got = phantom_forward(L, c["llm_config"], ids, exp["mask"], c["phantom"], c["phantom_eta"], embeds=emb)
    m = exp["mask"].bool()
    diff = (got - exp["logits"]).abs()[m].max().item()
    print(f"max abs diff {diff:.3e} (logits up to {exp['logits'].abs().max().item():.3f})")
    raise SystemExit(0 if diff < 1e-4 else 1)


def cmd_check_peft(args):
    """Our PEFT-format adapter (merge-lora --adapter-out): for every adapted HF module, base + alpha/r * B @ A must be
    the merged weight; every other tensor of the merged model must equal the base."""
    base = load_file(os.path.join(args.out, "base", "model.safetensors"))
    merged = load_file(os.path.join(args.out, "merged", "model.safetensors"))
    ad = load_file(os.path.join(args.out, "adapter", "adapter_model.safetensors"))
    cfg = json.load(open(os.path.join(args.out, "adapter", "adapter_config.json")))
    assert cfg["peft_type"] == "LORA" and cfg["bias"] == "none", cfg
    s = cfg["lora_alpha"] / cfg["r"]
    pre, suf = "base_model.model.", ".lora_A.weight"
    mods = sorted(k[len(pre):-len(suf)] for k in ad if k.endswith(suf))
    assert mods == sorted(cfg["target_modules"]), (mods, cfg["target_modules"])
    assert set(merged) == set(base), set(merged) ^ set(base)
    worst = 0.0
    for m in mods:
        A, B = ad[pre + m + suf], ad[pre + m + ".lora_B.weight"]
        assert A.shape[0] == cfg["r"] and B.shape[1] == cfg["r"], (m, A.shape, B.shape)
        worst = max(worst, (base[m + ".weight"] + s * B @ A - merged[m + ".weight"]).abs().max().item())
    for k in merged:
        if k[:-len(".weight")] not in mods:
            assert torch.equal(merged[k], base[k]), k
    print(f"{len(mods)} HF modules (e.g. {mods[0]}, {mods[-1]}): max |base + s*B@A - merged| {worst:.3e}")
    raise SystemExit(0 if worst < 1e-5 else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["hf-llm", "phantom", "vision", "check-saved", "check-merged", "check-peft"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--family", default="qwen2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eta", type=float, default=1e-4)
    ap.add_argument("--mode", default="gate")
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--generate", action="store_true")
    ap.add_argument("--repeat-first", action="store_true")
    ap.add_argument("--eos", type=int, default=5)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    {"hf-llm": cmd_hf_llm, "phantom": cmd_phantom, "vision": cmd_vision, "check-saved": cmd_check_saved,
     "check-merged": cmd_check_merged, "check-peft": cmd_check_peft}[args.command](args)


if __name__ == "__main__":
    main()
