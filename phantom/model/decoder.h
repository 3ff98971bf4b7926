// The decoder LLM: one implementation for the Qwen2, InternLM2 and Phi-3 layouts (their differences are only in
// weight names and fusing, handled in phantom/io/weights.cpp) with Phantom attention in every layer.
#pragma once

#include <torch/torch.h>

#include "phantom/model/attention.h"
#include "phantom/model/layers.h"

namespace phantom {

struct SwiGLUImpl : torch::nn::Module {
  SwiGLUImpl(int64_t hidden, int64_t intermediate);
  at::Tensor forward(const at::Tensor& x);
  Linear gate_up_proj{nullptr}, down_proj{nullptr};  // gate_up = [gate; up]
  int64_t intermediate;
};
TORCH_MODULE(SwiGLU);

struct DecoderLayerImpl : torch::nn::Module {
  DecoderLayerImpl(const LlmConfig& cfg, PhantomMode mode, double eta);
  at::Tensor forward(const at::Tensor& x, const AttentionInputs& in, const Rope& rope, LayerCache* cache);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  DecoderAttention self_attn{nullptr};
  SwiGLU mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

// Inputs of one decoder call. Everything but `embeds` is optional:
//   attention_mask (B, L) 1 = real token, 0 = padding (either side); absent = no padding.
//   positions      (B, L) RoPE positions; absent = cumsum(attention_mask) - 1 (+ cache length), as HF does.
//   sos_index      (B,) index of the sos token; absent = the first real token of each row.
//   mask           (B, 1, L, T) explicit bool attention mask; overrides the causal + padding mask built from
//                  attention_mask.
//   segments       rows holding several sequences (packed SFT) or a shared prompt (PO): attention per segment,
//                  no mask; positions and Phantom's sos per sequence (phantom/util/segment_layout.h). Training only.
struct DecoderInputs {
  at::Tensor embeds;
  at::Tensor attention_mask;
  at::Tensor positions;
  at::Tensor sos_index;
  at::Tensor mask;
  std::shared_ptr<const SegmentLayout> segments;
};

struct DecoderLMImpl : torch::nn::Module {
  DecoderLMImpl(const LlmConfig& cfg, PhantomMode mode, double eta);

  // Hidden states after the final norm, (B, L, C). With `cache`, appends to it (prefill or decode).
  at::Tensor forward_hidden(const DecoderInputs& in, KVCache* cache = nullptr);
  // Tied checkpoints (Qwen2-0.5B) have no lm_head tensor: the embedding matrix is the output projection.
  at::Tensor logits(const at::Tensor& hidden);
  at::Tensor forward(const DecoderInputs& in, KVCache* cache = nullptr) { return logits(forward_hidden(in, cache)); }
  // Token embeddings in the dtype of the final norm (the master dtype): a frozen embedding stored in bf16
  // (frozen_storage.h) still starts an fp32 residual stream.
  at::Tensor embed(const at::Tensor& ids);
  KVCache new_cache() const;

  // Recompute each layer's activations in backward instead of storing them (training memory).
  bool activation_checkpointing = false;

  // Registered as model.{embed_tokens,layers,norm} and lm_head: the HF names of a *ForCausalLM.
  std::shared_ptr<torch::nn::Module> body;
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm{nullptr};
  Linear lm_head{nullptr};  // null when tie_word_embeddings
  LlmConfig cfg;
  PhantomMode mode;
  Rope rope;
};
TORCH_MODULE(DecoderLM);

}  // namespace phantom
