// Hugging Face tensor names <-> ours, per backbone family, and loading a state dict into a model.
//
// Our decoder keeps q/k/v fused (`self_attn.qkv_proj`, rows [q | k | v]) and gate/up fused (`mlp.gate_up_proj`,
// rows [gate | up]), i.e. Phi-3's layout. Qwen2 stores q/k/v and gate/up separately; InternLM2 stores an
// interleaved `attention.wqkv` ((Hk, g+2, D) rows: the group's g query heads, then its key, then its value) and its
// own names (tok_embeddings, attention.wo, feed_forward.w1/w3/w2, attention_norm, ffn_norm, output).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "phantom/model/model_config.h"

namespace phantom {

using StateDict = std::map<std::string, at::Tensor>;

// HF names of a decoder (under `prefix`, e.g. "language_model." in a Phantom checkpoint, "" for a bare LLM) ->
// our names (same prefix). Other tensors (vision_model.*, vision_proj.*) pass through unchanged.
StateDict llm_from_hf(const StateDict& hf, const LlmConfig& cfg, const std::string& prefix);
// Ours -> HF names of cfg.family (the inverse of llm_from_hf).
StateDict llm_to_hf(const StateDict& ours, const LlmConfig& cfg, const std::string& prefix);

// Vision tensors of any InternViT layout -> ours (vision_model.*): remote code (vision_model.* or a bare InternViT
// checkpoint's embeddings.* / encoder.*) or transformers-native (vision_tower.*: cls_token, encoder.layer.N,
// attention.{q,k,v}_proj fused into attn.qkv, lambda_1/2, layernorm_before/after). Other tensors are dropped.
StateDict vision_from_hf(const StateDict& sd);

// A whole vision-language checkpoint -> our names, before llm_from_hf (language_model.model.*, .lm_head.*):
//   internvl_chat (Phantom, InternVL2/2.5 remote code): mlp1.{0,1,3} -> vision_proj.{0,1,3}
//   internvl_hf   (transformers InternVLForConditionalGeneration, with or without the leading "model."):
//                 vision_tower -> vision_model, multi_modal_projector.{layer_norm,linear_1,linear_2} ->
//                 vision_proj.{0,1,3}, language_model.{X | model.X} and lm_head -> language_model.{model.X, lm_head}
StateDict vlm_to_ours(const StateDict& sd, const std::string& layout);

struct LoadReport {
  std::vector<std::string> missing;      // model tensors the checkpoint lacks (left as initialised)
  std::vector<std::string> unexpected;   // checkpoint tensors the model does not have
  std::vector<std::string> mismatched;   // "name: checkpoint [a, b] vs model [c, d]"
  std::vector<std::string> created;      // missing Phantom tensors, initialised as the paper's modules are
  std::string summary() const;
};

// Copies `sd` (our names) into the module's parameters and buffers. Missing Phantom tensors (a plain LLM or
// InternVL checkpoint) are initialised as the official classes build them fresh (weights N(0, 0.02), biases zero) and listed in `created`.
// A missing non-Phantom tensor or a mis-shaped one is always an error naming each; unexpected tensors are
// reported. strict: missing Phantom tensors and unexpected tensors are errors too.
LoadReport load_state_dict(torch::nn::Module& model, const StateDict& sd, bool strict);

// Parameters and buffers of a module by name (tied tensors listed once).
StateDict module_state_dict(torch::nn::Module& model);

}  // namespace phantom
