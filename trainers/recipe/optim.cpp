#include "trainers/recipe/optim.h"

#include <cmath>
#include <regex>
#include <set>

namespace phantom::train {

Trainable select_trainable(torch::nn::Module& model, const std::vector<std::string>& patterns) {
  std::vector<std::regex> res;
  for (auto& p : patterns) {
    try {
      res.emplace_back(p);
    } catch (const std::regex_error& e) {
      throw std::runtime_error("trainable pattern '" + p + "' is not a valid regex: " + e.what());
    }
  }
  std::vector<bool> used(res.size(), false);
  Trainable t;
  std::set<const void*> seen;
  for (auto& item : model.named_parameters()) {
    auto& p = item.value();
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    bool on = false;
    for (size_t i = 0; i < res.size(); ++i)
      if (std::regex_search(item.key(), res[i])) on = true, used[i] = true;
    p.set_requires_grad(on);
    if (on) t.names.push_back(item.key()), t.params.push_back(p), t.count += p.numel();
  }
  for (size_t i = 0; i < res.size(); ++i)
    if (!used[i]) throw std::runtime_error("trainable pattern '" + patterns[i] + "' matches no parameter");
  return t;
}

bool decays(const std::string& name, const at::Tensor& p) {
  if (p.dim() < 2) return false;
  for (const char* s : {"position_embedding", "class_embedding", "gating_phantom"})
    if (name.find(s) != std::string::npos) return false;
  return true;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const Trainable& t, const OptimConfig& c) {
  std::vector<at::Tensor> decay, no_decay;
  for (size_t i = 0; i < t.params.size(); ++i) (decays(t.names[i], t.params[i]) ? decay : no_decay).push_back(t.params[i]);
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(c.eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, opts(c.weight_decay));
  groups.emplace_back(no_decay, opts(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(c.lr));
}

double lr_at(int64_t step, int64_t total, const OptimConfig& c) {
  if (c.warmup_steps > 0 && step < c.warmup_steps)
    return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  const double span = static_cast<double>(std::max<int64_t>(1, total - c.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
  return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1.0 + std::cos(M_PI * progress));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

}  // namespace phantom::train
