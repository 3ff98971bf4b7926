// The small random Phantom VLM of the checks that need a whole model but no checkpoint: `phantom gpucheck`'s
// CUDA-vs-CPU parity and the model, loss and trainer tests (tests/tiny.h). One shape, sized by the caller: a
// 2-layer Qwen2-layout decoder with GQA 4:2 and a 2x SwiGLU, a ViT with a 2x MLP whose tiles hold 4 x 4 patches
// (4 visual tokens after the pixel shuffle), and a Phantom branch with eta 0.3 so that it moves the outputs.
#pragma once

#include <cstdint>

#include "phantom/model/model_config.h"

namespace phantom {

struct SmallVlmSize {
  int64_t tile = 28, patch = 7;                      // tile and patch sides in pixels (tile = 4 patches)
  int64_t vit_width = 16, vit_layers = 1, vit_heads = 2;
  int64_t llm_width = 32, vocab = 64, context = 256;  // decoder width, vocabulary, max_position_embeddings
};

inline ModelConfig small_vlm_config(const SmallVlmSize& s = {}) {
  ModelConfig c;
  c.phantom_eta = 0.3;  // make the Phantom branch matter
  c.vision.image_size = s.tile, c.vision.patch_size = s.patch, c.vision.hidden_size = s.vit_width;
  c.vision.num_layers = s.vit_layers, c.vision.num_heads = s.vit_heads, c.vision.intermediate_size = 2 * s.vit_width;
  c.llm.hidden_size = s.llm_width, c.llm.intermediate_size = 2 * s.llm_width, c.llm.num_layers = 2;
  c.llm.num_heads = 4, c.llm.num_kv_heads = 2, c.llm.vocab_size = s.vocab, c.llm.max_position_embeddings = s.context;
  c.llm.rope.theta = 10000;
  c.image_token_index = 5;
  return c;
}

}  // namespace phantom
