// Training-step timing shared by `phantom bench` and `phantom gpucheck`: synthetic preference questions, one
// optimiser step, medians of interleaved steps. Work queued on a GPU is waited for before every clock read.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "data/collate.h"
#include "phantom/model/model.h"
#include "phantom/model/runtime.h"
#include "trainers/recipe/losses.h"

namespace phantom::cli {

// Text-only preference questions of `prompt` tokens with answers of `answer` tokens (random ids >= 10).
std::vector<data::EncodedPreference> bench_questions(int64_t n, int64_t prompt, int64_t answer, int64_t rejected,
                                                     int64_t vocab);

// SFT on the chosen answers of `qs` (prompt + chosen answer, one padded row each).
data::Batch chosen_sft_batch(const std::vector<data::EncodedPreference>& qs);

// The same questions in the three layouts the PO timings compare (`phantom bench po`, `phantom gpucheck`): SFT on
// the chosen answers, PO with the shared prefix (one row per question), PO naive (one row per answer).
struct PoLayouts {
  data::Batch sft, shared, naive;
};
PoLayouts po_layouts(const std::vector<data::EncodedPreference>& qs);

// The batch's tensors on `device` (counts and targets stay: the loss moves what it needs).
data::Batch batch_to(data::Batch b, const c10::Device& device);

// Waits for the work queued on `device` (CUDA); nothing on CPU.
void sync(const c10::Device& device);

struct StepTiming {
  double ms = 0;
  int64_t tokens = 0;      // real tokens of the batch
  int64_t supervised = 0;  // rows through the LM head
};

// One optimiser step (forward in `ac`, backward, clip, AdamW, zero_grad) on the model's device, in milliseconds.
double one_step(PhantomModelImpl& m, const data::Batch& b, const recipe::LossConfig& lc, torch::optim::Optimizer& opt,
                const std::vector<at::Tensor>& params, const AutocastState& ac, const c10::Device& device);

double median(std::vector<double> v);

// Median step time of each batch, the batches interleaved round by round (after `warmup` rounds), so a slow
// spell of a shared machine hits every layout alike.
std::vector<StepTiming> time_interleaved(PhantomModelImpl& m, const std::vector<const data::Batch*>& batches,
                                         const std::vector<recipe::LossConfig>& losses, torch::optim::Optimizer& opt,
                                         const std::vector<at::Tensor>& params, const AutocastState& ac,
                                         const c10::Device& device, int64_t warmup, int64_t steps);

}  // namespace phantom::cli
