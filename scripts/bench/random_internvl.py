#!/usr/bin/env python3
"""A random InternVL checkpoint at the real shapes of one Phantom size, written by the upstream classes.

    random_internvl.py --dims configs/dims/phantom-0.5b --out DIR [--dtype bf16|fp32] [--seed 0]

Reads the size's shapes (DIR/config.json of configs/dims/: the InternVL2 remote-code layout, no weights) and builds
transformers' own InternVLForConditionalGeneration with them (InternViT + pixel-shuffle MLP projector + Qwen2 / Llama
/ Phi-3 text model), initialised by transformers' _init_weights, and saves it with save_pretrained: the
transformers-native layout `phantom train` loads as a start point (docs/start-points.md). No Phantom tensors: the
trainer creates them, as it does for an InternVL2 start. For memory and speed runs at the real widths and depth
(scripts/bench/realwidth_05b.sh); the weights mean nothing.
"""
import argparse
import json
import os
import time

import torch

torch.set_num_threads(max(1, os.cpu_count() or 1))


def text_config(llm):
    family = llm["architectures"][0]
    base = dict(vocab_size=llm["vocab_size"], hidden_size=llm["hidden_size"], intermediate_size=llm["intermediate_size"],
                num_hidden_layers=llm["num_hidden_layers"], num_attention_heads=llm["num_attention_heads"],
                num_key_value_heads=llm.get("num_key_value_heads", llm["num_attention_heads"]),
                max_position_embeddings=llm["max_position_embeddings"], rms_norm_eps=llm.get("rms_norm_eps", 1e-6),
                rope_theta=llm.get("rope_theta", 10000.0),
                tie_word_embeddings=llm.get("tie_word_embeddings", False))
    if family.startswith("Qwen2"):
        return dict(model_type="qwen2", **base)
    if family.startswith("Phi3"):
        return dict(model_type="phi3", **base, sliding_window=None)
    # InternLM2 backbones are stored as Llama by transformers' InternVL converter.
    return dict(model_type="llama", **base, attention_bias=False, mlp_bias=False)


def vision_config(v, image_size):
    rms = v.get("norm_type", "rms_norm") == "rms_norm"
    return dict(hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
                num_attention_heads=v["num_attention_heads"], intermediate_size=v["intermediate_size"],
                image_size=image_size, patch_size=v["patch_size"], layer_norm_eps=v.get("layer_norm_eps", 1e-6),
                norm_type="rms_norm" if rms else "layer_norm", use_qk_norm=v.get("qk_normalization", False),
                attention_bias=v.get("qkv_bias", True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", required=True, help="a configs/dims/<size> directory")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"], help="stored dtype (the releases store bf16)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with open(os.path.join(args.dims, "config.json")) as f:
        dims = json.load(f)
    from transformers import InternVLConfig, InternVLForConditionalGeneration
    torch.manual_seed(args.seed)
    t0 = time.time()
    cfg = InternVLConfig(vision_config=vision_config(dims["vision_config"], dims.get("force_image_size", 448)),
                         text_config=text_config(dims["llm_config"]), downsample_ratio=dims.get("downsample_ratio", 0.5),
                         vision_feature_layer=-1,
                         # transformers' default (151667) lies outside Qwen2-0.5B's 151,655 ids, which our loader
                         # refuses; InternVL2-1B's <IMG_CONTEXT> is 151648.
                         image_token_id=min(151648, dims["llm_config"]["vocab_size"] - 1))
    model = InternVLForConditionalGeneration(cfg).eval()
    if args.dtype == "bf16":
        model = model.to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(args.out, safe_serialization=True, max_shard_size="50GB")
    print(f"[random_internvl] {n / 1e9:.3f} B parameters ({args.dtype}) in {args.out}, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
