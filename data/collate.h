// Batches as the trainer consumes them. Supervised tokens are described by `Targets`: the logits at
// (row, pred) predict `target`, and each target belongs to a segment (one answer), so the losses gather exactly
// the positions they need (the LM head then runs on those rows only).
//
// Preference batches come in two layouts that must give the same losses and gradients:
//   shared (default): one row per question, [prompt | answer 0 | answer 1 | ...]; an answer sees the prompt and
//                     itself, its positions restart after the prompt, the first token of every answer is
//                     predicted from the last prompt position. Image and prompt are computed once.
//   naive:            one row per (question, answer), [prompt | answer], as every other trainer does.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "data/chat_template.h"

namespace phantom::data {

struct Targets {
  at::Tensor row, pred, target, segment;  // (T,) int64 each
  int64_t num_segments = 0;
};

struct Batch {
  at::Tensor input_ids;       // (B, L) int64, right padded
  at::Tensor attention_mask;  // (B, L) 1 = token
  at::Tensor positions;       // (B, L) RoPE positions (shared layout); undefined = 0..len-1
  at::Tensor mask;            // (B, 1, L, L) bool attention mask (shared layout); undefined = causal + padding
  at::Tensor pixel_values;    // (N_tiles, 3, S, S) or undefined
  Targets targets;
  // Preference batches: segment s is answer seg_answer[s] (0 = chosen) of question seg_question[s].
  at::Tensor seg_question, seg_answer;
  // Dataset index of each question (preference) or sample (SFT), in batch order; set by the trainer's batch
  // maker (the loader shuffles; per-sample caches such as DPO reference log-probs are looked up with it).
  at::Tensor sample_index;
  int64_t num_questions = 0;
  int64_t num_tokens = 0;         // real (non-padding) tokens, for throughput
  int64_t num_sft_tokens = 0;     // tokens in the cross-entropy (chosen answers for preference batches)
  bool preference = false;
};

// Pixel tiles of one sample (all its images, in order), possibly undefined.
using SamplePixels = at::Tensor;

Batch collate_sft(const std::vector<EncodedConversation>& samples, const std::vector<SamplePixels>& pixels,
                  int32_t pad_id);
Batch collate_preference(const std::vector<EncodedPreference>& samples, const std::vector<SamplePixels>& pixels,
                         int32_t pad_id, bool shared_prefix);

// A preference sample as an SFT sample on its chosen answer (SFT stages trained on triples).
EncodedConversation chosen_as_conversation(const EncodedPreference& p);

}  // namespace phantom::data
