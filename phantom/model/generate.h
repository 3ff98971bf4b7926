// Decoding with the KV cache: greedy, temperature/top-k/top-p sampling, and beam search with HF's semantics
// (length penalty on the generated length, early stopping once every beam slot holds a finished hypothesis).
// Batched prompts are left padded; the Phantom sos vectors live in the cache, so beams share the prompt.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "phantom/model/decoder.h"

namespace phantom {

struct GenerationConfig {
  int64_t max_new_tokens = 20;
  int64_t min_new_tokens = 0;       // eos is forbidden before this many tokens
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;                // 0 = off
  double top_p = 1.0;               // 1 = off
  int64_t num_beams = 1;
  double length_penalty = 1.0;      // score = sum log p / (generated length ^ length_penalty)
  std::vector<int64_t> eos_token_ids;
  uint64_t seed = 0;                // sampling generator seed
};

struct GenerationResult {
  std::vector<std::vector<int64_t>> tokens;  // per prompt: generated ids, eos included when reached
  std::vector<double> scores;                // beam search: the chosen hypothesis' score; else sum log p
};

// Called after each step of greedy/sampled decoding with the tokens just produced for every row (a finished row
// repeats nothing: it gets -1). Lets `phantom generate` stream.
using TokenCallback = std::function<void(const std::vector<int64_t>& step_tokens)>;

// prompt_embeds (B, L, C) with visual tokens already spliced; attention_mask (B, L), left padded.
GenerationResult generate(DecoderLMImpl& lm, const at::Tensor& prompt_embeds, const at::Tensor& attention_mask,
                          const GenerationConfig& cfg, const TokenCallback& on_tokens = {});

}  // namespace phantom
