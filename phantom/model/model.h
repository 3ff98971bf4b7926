// The Phantom vision-language model: InternViT -> pixel shuffle -> vision_proj -> splice at <IMG_CONTEXT> ->
// decoder LLM with the Phantom dimension. Parameter names follow the HF checkpoints (vision_model.*,
// vision_proj.{0,1,3}.*, language_model.model.*, language_model.lm_head.*) with the decoder's q/k/v and
// gate/up fused (Phi-3's layout); phantom/io/weights.cpp maps the other layouts.
#pragma once

#include <torch/torch.h>

#include "phantom/model/decoder.h"
#include "phantom/model/vision.h"

namespace phantom {

// vision_proj = Sequential(LayerNorm(C·r⁻²), Linear(C·r⁻², d), GELU, Linear(d, d)); names .0, .1, .3.
struct ProjectorImpl : torch::nn::Module {
  ProjectorImpl(int64_t in, int64_t out);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::LayerNorm ln{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Projector);

// A batch as the model sees it. `pixel_values` holds every tile of every image of the batch in order; their
// visual tokens replace, in order, the positions of input_ids equal to image_token_index.
struct ModelInputs {
  at::Tensor input_ids;       // (B, L) int64
  at::Tensor pixel_values;    // (N_tiles, 3, S, S) or undefined (text only)
  at::Tensor attention_mask;  // (B, L) 1 = token, 0 = padding; optional
  at::Tensor positions;       // (B, L) optional explicit RoPE positions
  at::Tensor sos_index;       // (B,) optional; default the first real token
  at::Tensor mask;            // (B, 1, L, L) optional explicit attention mask
  std::shared_ptr<const SegmentLayout> segments;  // packed rows / shared prefixes (DecoderInputs::segments)
};

struct PhantomModelImpl : torch::nn::Module {
  explicit PhantomModelImpl(const ModelConfig& cfg);

  // (N_tiles, 3, S, S) -> (N_tiles, tokens_per_tile, llm_hidden)
  at::Tensor encode_images(const at::Tensor& pixel_values);
  // Token embeddings with the visual tokens spliced in; throws when placeholder and visual token counts differ.
  at::Tensor embed_inputs(const at::Tensor& input_ids, const at::Tensor& pixel_values);
  at::Tensor embed_with_visual(const at::Tensor& input_ids, const at::Tensor& visual_tokens);
  // Final hidden states (B, L, C) and logits (B, L, V).
  at::Tensor forward_hidden(const ModelInputs& in, KVCache* cache = nullptr);
  at::Tensor forward(const ModelInputs& in, KVCache* cache = nullptr) {
    return language_model->logits(forward_hidden(in, cache));
  }

  int64_t tokens_per_tile() const;
  ModelConfig cfg;
  int64_t image_token_index = -1;  // set from the tokenizer or config.json

  VisionModel vision_model{nullptr};
  Projector vision_proj{nullptr};
  DecoderLM language_model{nullptr};  // language_model.model.*, language_model.lm_head.*
};
TORCH_MODULE(PhantomModel);

// Initialises a model built from scratch: N(0, 0.02) for Linear/Embedding weights, zero biases, unit norms,
// LayerScale at vision.initializer_factor, PyTorch's default init for the Phantom tensors. Uses torch's global
// generator: seed it first for reproducible runs.
void init_weights(PhantomModelImpl& model, double std = 0.02);

// Counts (total, trainable) parameters, shared tensors counted once.
std::pair<int64_t, int64_t> count_parameters(torch::nn::Module& m);

}  // namespace phantom
