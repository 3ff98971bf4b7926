// AdamW with decay / no-decay groups, warmup + cosine schedule, global-norm clipping.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "trainers/recipe/run_config.h"

namespace phantom::train {

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

std::unique_ptr<torch::optim::AdamW> make_adamw(const Trainable& t, const OptimConfig& c);

// Linear warmup from 0 to lr over warmup_steps, then cosine from lr to min_lr at `total` steps.
double lr_at(int64_t step, int64_t total, const OptimConfig& c);
void set_lr(torch::optim::Optimizer& opt, double lr);

}  // namespace phantom::train
