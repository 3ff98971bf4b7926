#include "phantom/model/decoder.h"

#include <functional>

#include "phantom/model/checkpointing.h"
#include "phantom/model/frozen_storage.h"
#include "phantom/model/runtime.h"
#include "phantom/model/segment_attention.h"

namespace phantom {

SwiGLUImpl::SwiGLUImpl(int64_t hidden, int64_t inter) : intermediate(inter) {
  gate_up_proj = register_module("gate_up_proj", Linear(hidden, 2 * inter, false));
  down_proj = register_module("down_proj", Linear(inter, hidden, false));
}

at::Tensor SwiGLUImpl::forward(const at::Tensor& x) {
  auto gu = gate_up_proj(x);
  return down_proj(torch::silu(gu.narrow(-1, 0, intermediate)) * gu.narrow(-1, intermediate, intermediate));
}

at::Tensor DecoderLMImpl::logits(const at::Tensor& hidden) {
  return lm_head ? lm_head(hidden) : torch::nn::functional::linear(hidden, weight_for_input(embed_tokens->weight, hidden));
}

at::Tensor DecoderLMImpl::embed(const at::Tensor& ids) {
  auto e = embed_tokens(ids);
  const auto master = norm->weight.scalar_type();
  return e.scalar_type() == master ? e : e.to(master);
}

DecoderLayerImpl::DecoderLayerImpl(const LlmConfig& cfg, PhantomMode mode, double eta) {
  input_layernorm = register_module("input_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  self_attn = register_module("self_attn", DecoderAttention(cfg, mode, eta));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  mlp = register_module("mlp", SwiGLU(cfg.hidden_size, cfg.intermediate_size));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const AttentionInputs& in, const Rope& rope,
                                     LayerCache* cache) {
  auto h = x + self_attn(input_layernorm(x), in, rope, cache);
  return h + mlp(post_attention_layernorm(h));
}


DecoderLMImpl::DecoderLMImpl(const LlmConfig& c, PhantomMode m, double eta) : cfg(c), mode(m), rope(c, c.head_dim()) {
  body = register_module("model", std::make_shared<torch::nn::Module>());
  embed_tokens = body->register_module("embed_tokens", torch::nn::Embedding(cfg.vocab_size, cfg.hidden_size));
  layers = body->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_layers; ++i) layers->push_back(DecoderLayer(cfg, mode, eta));
  norm = body->register_module("norm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  if (!cfg.tie_word_embeddings)
    lm_head = register_module(
        "lm_head", Linear(cfg.hidden_size, cfg.vocab_size, false));
}

KVCache DecoderLMImpl::new_cache() const {
  KVCache c;
  c.layers.resize(static_cast<size_t>(cfg.num_layers));
  return c;
}

at::Tensor DecoderLMImpl::forward_hidden(const DecoderInputs& in, KVCache* cache) {
  const auto& x0 = in.embeds;
  const int64_t B = x0.size(0), L = x0.size(1);
  const int64_t past = cache ? cache->length() : 0;
  auto dev = x0.device();
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(dev);

  at::Tensor am = in.attention_mask.defined() ? in.attention_mask.to(dev).to(torch::kBool)
                                              : torch::ones({B, L}, i64.dtype(torch::kBool));
  const bool padded = in.attention_mask.defined() && !am.all().item<bool>();
  at::Tensor valid = cache && cache->valid.defined() ? torch::cat({cache->valid, am}, 1) : am;
  if (cache) cache->valid = valid;

  AttentionInputs ai;
  if (in.segments) {
    TORCH_CHECK(!cache, "segment layouts (packed rows, shared prefixes) are for training, without a KV cache");
    check_layout(*in.segments, B, L);
    ai.segments = in.segments;
  }
  if (in.positions.defined()) {
    ai.positions = in.positions.to(dev);
  } else if (in.segments) {
    ai.positions = segment_positions(*in.segments, L, dev);
  } else {
    // HF: position_ids = cumsum(attention_mask) - 1 over the whole sequence, padding positions clamped to 1.
    auto full = valid.to(torch::kInt64).cumsum(1) - 1;
    full = full.masked_fill(valid.logical_not(), 1);
    ai.positions = full.narrow(1, past, L);
  }
  ai.rope_seq_len = ai.positions.numel() ? ai.positions.max().item<int64_t>() + 1 : 0;
  if (mode != PhantomMode::off && in.segments) {
    // One sos per sequence of the row; a row of one sequence (a shared-prefix row) keeps the plain (B,) index.
    auto [sos, slot] = segment_sos(*in.segments, L, dev);
    if (sos.size(1) == 1) ai.sos_index = sos.squeeze(1);
    else ai.sos_index = sos, ai.sos_slot = slot;
  } else if (mode != PhantomMode::off && !(cache && cache->layers[0].q_s.defined())) {
    // First real token of each row: position 0 with right padding, L - len with left padding.
    ai.sos_index = in.sos_index.defined() ? in.sos_index.to(dev) : am.to(torch::kInt64).argmax(1);
  }
  if (in.segments) {
    // attention per segment: no mask
  } else if (in.mask.defined()) {
    ai.mask = in.mask.to(dev);
  } else if (padded || (cache && cache->valid.size(1) != L && L > 1) || (cache && !valid.all().item<bool>())) {
    ai.mask = causal_padding_mask(valid, past, L);
  }

  at::Tensor x = x0;
  for (size_t i = 0; i < layers->size(); ++i) {
    auto layer = layers[i]->as<DecoderLayerImpl>();
    LayerCache* lc = cache ? &cache->layers[i] : nullptr;
    if (activation_checkpointing && is_training() && torch::GradMode::is_enabled() && !lc) {
      x = checkpointed(x, [layer, ai, this](const at::Tensor& h) { return layer->forward(h, ai, rope, nullptr); });
    } else {
      x = layer->forward(x, ai, rope, lc);
    }
  }
  return norm(x);
}

}  // namespace phantom
