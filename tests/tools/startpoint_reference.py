#!/usr/bin/env python3
"""Start-point checkpoints for tests/test_start_points.cpp, written by the upstream Python classes.

    startpoint_reference.py internvl --family qwen2|phi3|internlm2 --out DIR
        A tiny random transformers InternVLForConditionalGeneration (InternLM2 becomes Llama there, as transformers'
        converter does) and, from the same tensors:
          DIR/native      save_pretrained (vision_tower.*, multi_modal_projector.*, language_model.model.*, ...)
          DIR/native_new  the model's own state_dict names (model.vision_tower.*, model.language_model.*, lm_head.*)
          DIR/remote      the InternVL2 remote-code layout (InternVLChatModel): vision_model.* with fused attn.qkv,
                          mlp1.{0,1,3}, language_model.* in the backbone's own names (InternLM2: wqkv interleaved,
                          w1/w3/w2, tok_embeddings, output; Phi-3: fused qkv_proj/gate_up_proj), InternVLChatConfig
        and DIR/expected.safetensors: ids, pixel values, logits and 8 greedy ids of transformers' model.
        qwen2 uses InternViT-6B settings (RMSNorm, q/k norm, no qkv bias) and leaves them, and the Qwen2 head's tie
        flag, out of the remote config.json: only the upstream defaults load it right.
    startpoint_reference.py bare --out DIR
        DIR/llm: a tiny Qwen2ForCausalLM (tied, as Qwen2-0.5B), DIR/vit: a bare InternViT checkpoint (embeddings.*,
        encoder.layers.*, InternVisionConfig), and DIR/expected.safetensors: the LLM's text logits.
"""
import argparse
import json
import os
import re

import torch
from safetensors.torch import save_file

torch.set_num_threads(2)

IMG = 5  # image token id of the tiny models


def perturb(model):
    """Random but not tiny: every norm and bias matters."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n and n.endswith("weight"):
                p.uniform_(0.5, 1.5)
            elif n.endswith("bias") or "lambda" in n or "norm" in n:
                p.normal_(0, 0.3)
            elif "position_embeddings" in n or "cls_token" in n:
                p.normal_(0, 0.5)


def text_config(family, vocab=96):
    base = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0)
    if family == "qwen2":
        return dict(model_type="qwen2", **base)
    if family == "phi3":
        # Phi3Config's default eos_token_id (32000) lies outside this small vocabulary, which the loader refuses.
        return dict(model_type="phi3", **base, pad_token_id=0, bos_token_id=1, eos_token_id=2, sliding_window=None,
                    tie_word_embeddings=False)
    return dict(model_type="llama", **base, attention_bias=False, mlp_bias=False, tie_word_embeddings=False)


def vision_config(six_b):
    c = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=56,
             patch_size=14, layer_norm_eps=1e-6)
    if six_b:
        return dict(c, norm_type="rms_norm", use_qk_norm=True, attention_bias=False)
    return dict(c, norm_type="layer_norm", use_qk_norm=False, attention_bias=True)


# transformers' convert_internvl_weights_to_hf.py tables, applied backwards (converted -> original).
VISION_BACK = [(r"vision_tower", "vision_model"), (r"encoder\.layer\.", "encoder.layers."),
               (r"cls_token", "class_embedding"), (r"position_embeddings", "position_embedding"),
               (r"patch_embeddings\.projection", "patch_embedding"), (r"lambda_(\d+)", r"ls\1"),
               (r"attention\.projection_layer", "attn.proj"), (r"attention\.", "attn."),
               (r"layernorm_before", "norm1"), (r"layernorm_after", "norm2")]
LLAMA_TO_INTERNLM2 = [("embed_tokens", "tok_embeddings"), ("self_attn.o_proj", "attention.wo"),
                      ("mlp.gate_proj", "feed_forward.w1"), ("mlp.down_proj", "feed_forward.w2"),
                      ("mlp.up_proj", "feed_forward.w3"), ("input_layernorm", "attention_norm"),
                      ("post_attention_layernorm", "ffn_norm"), ("lm_head", "output")]
PROJ_BACK = [("multi_modal_projector.layer_norm", "mlp1.0"), ("multi_modal_projector.linear_1", "mlp1.1"),
             ("multi_modal_projector.linear_2", "mlp1.3")]


def remote_state_dict(legacy, family, tcfg, C):
    """save_pretrained names (legacy) -> the InternVL2 remote-code names."""
    sd = {}
    for n, p in legacy.items():
        if n.startswith("vision_tower."):
            if ".attention.k_proj." in n or ".attention.v_proj." in n:
                continue
            if ".attention.q_proj." in n:  # the remote code's fused qkv, rows [q | k | v]
                p = torch.cat([p, legacy[n.replace("q_proj", "k_proj")], legacy[n.replace("q_proj", "v_proj")]], 0)
                n = n.replace("q_proj", "qkv")
            for a, b in VISION_BACK:
                n = re.sub(a, b, n)
            sd[n] = p
        elif n.startswith("multi_modal_projector."):
            for a, b in PROJ_BACK:
                n = n.replace(a, b)
            sd[n] = p
        elif family != "internlm2":
            sd[n] = p
        else:  # Llama names -> InternLM2: interleaved wqkv, w1/w3/w2, tok_embeddings, output
            if re.search(r"self_attn\.(k|v)_proj", n):
                continue
            if "self_attn.q_proj" in n:
                H, Hk = tcfg["num_attention_heads"], tcfg["num_key_value_heads"]
                D = tcfg["hidden_size"] // H
                g = H // Hk
                q = p.view(Hk, g, D, -1)
                k = legacy[n.replace("q_proj", "k_proj")].view(Hk, 1, D, -1)
                v = legacy[n.replace("q_proj", "v_proj")].view(Hk, 1, D, -1)
                sd[n.replace("self_attn.q_proj", "attention.wqkv")] = torch.cat([q, k, v], 1).reshape(-1, p.shape[1])
                continue
            for a, b in LLAMA_TO_INTERNLM2:
                n = n.replace(a, b)
            sd[n] = p
    return {k: v.contiguous() for k, v in sd.items()}


def remote_config(family, tcfg, vcfg, six_b):
    arch = {"qwen2": "Qwen2ForCausalLM", "phi3": "Phi3ForCausalLM", "internlm2": "InternLM2ForCausalLM"}[family]
    llm = {k: v for k, v in tcfg.items() if k != "model_type"}
    llm.update(architectures=[arch], model_type=family)
    if family == "internlm2":
        llm["bias"] = False
        llm.pop("attention_bias"), llm.pop("mlp_bias")
    if family == "qwen2":
        llm.pop("tie_word_embeddings", None)  # Qwen2Config's default: untied
    vision = dict(architectures=["InternVisionModel"], model_type="intern_vit_6b",
                  hidden_size=vcfg["hidden_size"], intermediate_size=vcfg["intermediate_size"],
                  num_hidden_layers=vcfg["num_hidden_layers"], num_attention_heads=vcfg["num_attention_heads"],
                  image_size=vcfg["image_size"], patch_size=vcfg["patch_size"], layer_norm_eps=1e-6)
    if not six_b:  # InternViT-300M says so; the 6B settings are InternVisionConfig's defaults and stay omitted
        vision.update(norm_type="layer_norm", qk_normalization=False, qkv_bias=True)
    return dict(architectures=["InternVLChatModel"], model_type="internvl_chat", llm_config=llm, vision_config=vision,
                downsample_ratio=0.5, force_image_size=vcfg["image_size"], select_layer=-1, ps_version="v2",
                template="internvl2_5")


def cmd_internvl(args):
    from transformers import InternVLConfig, InternVLForConditionalGeneration
    torch.manual_seed(args.seed)
    six_b = args.family == "qwen2"
    tcfg, vcfg = text_config(args.family, args.vocab or 96), vision_config(six_b)
    cfg = InternVLConfig(vision_config=vcfg, text_config=tcfg, image_token_id=IMG, downsample_ratio=0.5)
    model = InternVLForConditionalGeneration(cfg).float().eval()
    perturb(model)
    native = os.path.join(args.out, "native")
    model.save_pretrained(native, safe_serialization=True)
    from safetensors.torch import load_file
    legacy = load_file(os.path.join(native, "model.safetensors"))

    new_dir = os.path.join(args.out, "native_new")  # the names transformers' modules have now
    os.makedirs(new_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(new_dir, "model.safetensors"))
    with open(os.path.join(native, "config.json")) as f:
        conf = json.load(f)
    with open(os.path.join(new_dir, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)

    remote = os.path.join(args.out, "remote")
    os.makedirs(remote, exist_ok=True)
    save_file(remote_state_dict(legacy, args.family, tcfg, vcfg["hidden_size"]), os.path.join(remote, "model.safetensors"))
    with open(os.path.join(remote, "config.json"), "w") as f:
        json.dump(remote_config(args.family, tcfg, vcfg, six_b), f, indent=2)

    g = torch.Generator().manual_seed(args.seed + 1)
    tiles = 3  # 4 visual tokens per 56-px tile
    pixels = torch.randn(tiles, 3, 56, 56, generator=g)
    ids = torch.cat([torch.randint(6, 96, (1, 5), generator=g), torch.full((1, 4 * tiles), IMG),
                     torch.randint(6, 96, (1, 7), generator=g)], 1)
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values=pixels).logits
        out = model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=8, min_new_tokens=8, do_sample=False,
                             num_beams=1, eos_token_id=None, pad_token_id=0)
    save_file({"ids": ids, "pixels": pixels, "logits": logits.contiguous(), "greedy": out[:, ids.shape[1]:].contiguous()},
              os.path.join(args.out, "expected.safetensors"))


def cmd_bare(args):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(args.seed)
    cfg = Qwen2Config(vocab_size=args.vocab or 1024, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, rope_theta=10000.0)
    llm = Qwen2ForCausalLM(cfg).float().eval()
    perturb(llm)
    llm.save_pretrained(os.path.join(args.out, "llm"), safe_serialization=True)
    # InternViT-300M-style bare checkpoint: the remote code's names without a prefix.
    from transformers import InternVLVisionConfig, InternVLVisionModel
    vc = InternVLVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                              image_size=28, patch_size=7, attention_bias=True)
    vit = InternVLVisionModel(vc).float().eval()
    perturb(vit)
    legacy = {"vision_tower." + k: v for k, v in vit.state_dict().items()}
    sd = {k[len("vision_model."):]: v for k, v in remote_state_dict(legacy, "qwen2", None, 16).items()}
    vdir = os.path.join(args.out, "vit")
    os.makedirs(vdir, exist_ok=True)
    save_file(sd, os.path.join(vdir, "model.safetensors"))
    with open(os.path.join(vdir, "config.json"), "w") as f:
        json.dump(dict(architectures=["InternVisionModel"], model_type="intern_vit_6b", hidden_size=16,
                       intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=7,
                       norm_type="layer_norm", qk_normalization=False, qkv_bias=True), f, indent=2)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, cfg.vocab_size, (2, 12), generator=g)
    pixels = torch.randn(2, 3, 28, 28, generator=g)
    with torch.no_grad():
        logits = llm(input_ids=ids).logits
        vis = vit(pixel_values=pixels).last_hidden_state
    save_file({"ids": ids, "logits": logits.contiguous(), "pixels": pixels, "vit_out": vis.contiguous()},
              os.path.join(args.out, "expected.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["internvl", "bare"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--family", default="qwen2", choices=["qwen2", "phi3", "internlm2"])
    ap.add_argument("--vocab", type=int, default=0, help="LLM vocabulary (internvl: 96, bare: 1024)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    {"internvl": cmd_internvl, "bare": cmd_bare}[args.command](args)


if __name__ == "__main__":
    main()
