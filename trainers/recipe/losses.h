// Losses of the recipes: SFT (token-mean cross-entropy), Phantom Optimization (SFT on the chosen answer + a
// reference-free SimPO-style preference term, docs/paper.md), and for ablations SimPO, DPO, IPO and ORPO. The
// equations of each, and their golden tests against tests/tools/loss_reference.py: docs/training.md.
//
// Several rejected answers per question: the preference term of a question is the MEAN of its pairwise terms
// (chosen vs each rejected), so a question weighs the same whatever its number of rejected answers.
//
// Normalisation for gradient accumulation and data parallelism: losses are sums divided by GLOBAL counts (the
// supervised tokens / questions of the whole optimiser step, over micro-batches and ranks), so accumulating
// k micro-batches gives exactly the gradient of one k-times larger batch.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "data/collate.h"
#include "phantom/model/model.h"
#include "trainers/recipe/loss_config.h"

namespace phantom::recipe {

// log p(target) at every supervised position, from final hidden states (B, L, C): gathers the predicting rows
// first so the LM head runs on T rows instead of B*L. -> (T,)
at::Tensor token_logps(const at::Tensor& hidden, const data::Targets& t,
                       const std::function<at::Tensor(const at::Tensor&)>& lm_head);

struct LossOut {
  at::Tensor loss;                        // scalar, already divided by the global counts
  std::map<std::string, double> sums;     // metric sums over this micro-batch (divide by counts to report)
};

// Global normalisers of one optimiser step.
struct StepCounts {
  int64_t sft_tokens = 0;  // supervised tokens in the cross-entropy
  int64_t questions = 0;   // preference questions
};

// `ref_logps` (DPO/IPO only): per-segment reference log-probabilities (sum over the answer's tokens).
LossOut compute_loss(const at::Tensor& token_logp, const data::Batch& batch, const LossConfig& cfg,
                     const StepCounts& global, const at::Tensor& ref_logps = {});

// Forward of a batch through the model to its loss (positions, masks and images as the batch says).
// `ref_logps` (DPO/IPO): per-segment reference log-probs, see compute_loss.
LossOut batch_loss(PhantomModelImpl& model, const data::Batch& b, const LossConfig& cfg, const StepCounts& counts,
                   const at::Tensor& ref_logps = {});

// Summed log-prob of every segment (answer) of a batch -> (num_segments,) fp32: what DPO/IPO's reference gives.
at::Tensor segment_logps(PhantomModelImpl& model, const data::Batch& b);

}  // namespace phantom::recipe
