// Batches as the trainer consumes them. Supervised tokens are described by `Targets`: the logits at
// (row, pred) predict `target`, and each target belongs to a segment (one answer), so the losses gather exactly
// the positions they need (the LM head then runs on those rows only).
//
// Preference batches come in two layouts that must give the same losses and gradients:
//   shared (default): one row per question, [prompt | answer 0 | answer 1 | ...]; an answer sees the prompt and
//                     itself, its positions restart after the prompt, the first token of every answer is
//                     predicted from the last prompt position. Image and prompt are computed once. The row is
//                     described by segments (phantom/util/segment_layout.h), never by an L x L mask.
//   naive:            one row per (question, answer), [prompt | answer], as every other trainer does.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "data/chat_template.h"
#include "phantom/util/segment_layout.h"

namespace phantom::data {

struct Targets {
  at::Tensor row, pred, target, segment;  // (T,) int64 each
  int64_t num_segments = 0;
};

struct Batch {
  at::Tensor input_ids;       // (B, L) int64, right padded
  at::Tensor attention_mask;  // (B, L) 1 = token
  at::Tensor positions;       // (B, L) RoPE positions (shared / packed layouts); undefined = 0..len-1
  // Shared-prefix and packed rows: which tokens see which (phantom/util/segment_layout.h); null = causal + padding.
  std::shared_ptr<const SegmentLayout> segments;
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
  int64_t num_slots = 0;          // rows x length: num_tokens / num_slots is the batch's share of real tokens
  bool preference = false;
};

// Pixel tiles of one sample (all its images, in order), possibly undefined.
using SamplePixels = at::Tensor;

Batch collate_sft(const std::vector<EncodedConversation>& samples, const std::vector<SamplePixels>& pixels,
                  int32_t pad_id);
// Packed SFT: the samples placed first-fit, in order, into rows of at most `row_length` tokens (a longer
// sample gets a row of its own), each sample a segment: attention confined to it, positions and Phantom's sos
// restarting, the loss terms exactly those of collate_sft (same targets, same counts).
Batch collate_sft_packed(const std::vector<EncodedConversation>& samples, const std::vector<SamplePixels>& pixels,
                         int32_t pad_id, int64_t row_length);
Batch collate_preference(const std::vector<EncodedPreference>& samples, const std::vector<SamplePixels>& pixels,
                         int32_t pad_id, bool shared_prefix);

// A preference sample as an SFT sample on its chosen answer (SFT stages trained on triples).
EncodedConversation chosen_as_conversation(const EncodedPreference& p);

}  // namespace phantom::data
