// The optimiser of a stage: AdamW with decay / no-decay groups, warmup + cosine schedule, global-norm clipping, and
// under data parallel the gradient sum over ranks (trainers/distributed/buckets.h) and ZeRO-1/2 (zero.h).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "trainers/distributed/buckets.h"

#include "trainers/recipe/run_config.h"

namespace phantom::recipe {

struct Trainable {
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
  int64_t count = 0;  // elements
};

// Sets requires_grad on every parameter: true when its name matches one of `patterns` (std::regex search).
// Shared tensors count once. Throws when a pattern matches nothing (a typo would silently freeze everything).
Trainable select_trainable(torch::nn::Module& model, const std::vector<std::string>& patterns);

// No weight decay on vectors (norms, biases, LayerScale), embeddings of positions/classes and the Phantom gates.
bool decays(const std::string& name, const at::Tensor& p);

// torch::optim::AdamW with its update done by ATen's fused kernel (at::_fused_adamw_: one pass over param, grad
// and both moments per tensor, no temporaries; PyTorch's `fused=True`). Same state objects, so checkpoints,
// ZeRO's gather and load are those of AdamW; the update equals AdamW's within float rounding
// (tests/test_head_loss.cpp, "fused AdamW").
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

std::unique_ptr<torch::optim::AdamW> make_adamw(const Trainable& t, const OptimConfig& c);

// Linear warmup from 0 to lr over warmup_steps, then cosine from lr to min_lr at `total` steps.
double lr_at(int64_t step, int64_t total, const OptimConfig& c);
void set_lr(torch::optim::Optimizer& opt, double lr);

// AdamW of one stage. Single process: exactly the plain optimiser. Data parallel: gradients SUMMED over ranks in
// buckets during the last micro-batch's backward; ZeRO-1 (`distributed.zero_stage: 1`): each rank keeps and steps
// the AdamW state of its own tensors and broadcasts them; ZeRO-2: also only its own gradients. Checkpoints hold the
// full state (gathered on rank 0), so any world size resumes.
class StageOptimizer {
 public:
  StageOptimizer(distributed::World* w, const Trainable& t, const OptimConfig& oc, const distributed::DistributedConfig& dc);

  // Data parallel: the next backward is the last micro-batch of the step, so its gradients are summed.
  void sync_next_backward(bool on) { if (buckets_) buckets_->sync_next_backward(on); }
  void finish_backward() { if (buckets_) buckets_->finish_backward(); }  // every bucket summed and written back
  double last_sync_ms() const { return buckets_ ? buckets_->last_sync_ms() : 0; }
  int64_t last_overlapped() const { return buckets_ ? buckets_->last_overlapped() : 0; }
  double clip_grad_norm(double max_norm);  // global norm (ZeRO-2: the owners' norms, combined over ranks)
  void step(double lr);                    // AdamW step (ZeRO: own tensors, then owners broadcast), gradients cleared
  void zero_grad();
  // The full AdamW state for a checkpoint (collective under ZeRO: gathered on rank 0, nullptr elsewhere).
  torch::optim::Optimizer* checkpoint_state();
  void load(const std::string& ckpt_dir);  // a checkpoint written by any world size, ZeRO or not
  int64_t state_bytes() const;             // AdamW moments this rank holds (2 per element of its tensors)
  int64_t grad_bytes() const;              // gradients this rank holds after a step's reduction, bucket buffers included
  std::string memory_report();             // collective: the state and gradients held by each rank

 private:
  distributed::World* w_;
  Trainable all_;
  OptimConfig oc_;
  int zero_ = 0;                               // ZeRO stage in effect (0 without a world)
  std::vector<int> owner_;                     // ZeRO: owning rank of each trainable tensor
  std::unique_ptr<torch::optim::AdamW> opt_;   // all tensors, or this rank's own under ZeRO
  std::unique_ptr<torch::optim::AdamW> full_;  // ZeRO, rank 0: the gathered state for checkpoints
  std::unique_ptr<distributed::GradientBuckets> buckets_;   // data parallel only
};

}  // namespace phantom::recipe
