#include "trainers/recipe/optim.h"

#include <cmath>
#include <regex>
#include <set>

#include "phantom/util/logf.h"
#include "trainers/distributed/zero.h"
#include "trainers/recipe/train_state.h"

namespace phantom::recipe {

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
  return std::make_unique<FusedAdamW>(groups, torch::optim::AdamWOptions(c.lr));
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  torch::NoGradGuard ng;
  at::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    TORCH_CHECK(!o.amsgrad(), "FusedAdamW: amsgrad is not supported");
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = state_[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto st = std::make_unique<torch::optim::AdamWParamState>();
        st->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
        st->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
        slot = std::move(st);
      }
      auto& st = static_cast<torch::optim::AdamWParamState&>(*slot);
      st.step(st.step() + 1);
      params.push_back(p), grads.push_back(p.grad()), exp_avgs.push_back(st.exp_avg()), exp_avg_sqs.push_back(st.exp_avg_sq());
      steps.push_back(torch::full({}, static_cast<double>(st.step()), p.options().dtype(at::kFloat)));
    }
    if (params.empty()) continue;
    const auto [beta1, beta2] = o.betas();
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, {}, steps, o.lr(), beta1, beta2, o.weight_decay(), o.eps(),
                      /*amsgrad=*/false, /*maximize=*/false);
  }
  return loss;
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

// ---- StageOptimizer ------------------------------------------------------------------------------------------------

namespace {
int64_t nbytes(const at::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }
}  // namespace

StageOptimizer::StageOptimizer(distributed::World* w, const Trainable& t, const OptimConfig& oc, const distributed::DistributedConfig& dc)
    : w_(w), all_(t), oc_(oc), zero_(w ? dc.zero_level() : 0) {
  if (zero_ == 0) {
    opt_ = make_adamw(all_, oc_);
  } else {
    owner_ = distributed::partition_by_size(all_.params, w_->size());
    Trainable mine;
    for (size_t i = 0; i < all_.params.size(); ++i)
      if (owner_[i] == w_->rank()) mine.names.push_back(all_.names[i]), mine.params.push_back(all_.params[i]), mine.count += all_.params[i].numel();
    opt_ = make_adamw(mine, oc_);
  }
  if (w_) buckets_ = std::make_unique<distributed::GradientBuckets>(*w_, all_.params, all_.names, dc, zero_ == 2 ? owner_ : std::vector<int>{});
}

double StageOptimizer::clip_grad_norm(double max_norm) {
  max_norm = max_norm > 0 ? max_norm : 1e30;
  if (zero_ < 2) return torch::nn::utils::clip_grad_norm_(all_.params, max_norm);
  return distributed::clip_owned_grad_norm(*w_, all_.params, owner_, max_norm);
}

void StageOptimizer::step(double lr) {
  if (full_) full_->state().clear();  // the copy gathered for the last checkpoint
  set_lr(*opt_, lr);
  opt_->step();
  if (zero_ >= 1) distributed::broadcast_from_owners(*w_, all_.params, owner_);
  zero_grad();
}

void StageOptimizer::zero_grad() {
  for (auto& p : all_.params)
    if (p.grad().defined()) p.mutable_grad().reset();
}

torch::optim::Optimizer* StageOptimizer::checkpoint_state() {
  if (zero_ == 0) return opt_.get();
  if (w_->rank() == 0 && !full_) full_ = make_adamw(all_, oc_);
  distributed::gather_adamw_state(*w_, all_.params, owner_, *opt_, full_.get());
  if (w_->rank() != 0) return nullptr;
  set_lr(*full_, static_cast<torch::optim::AdamWOptions&>(opt_->param_groups().at(0).options()).lr());
  return full_.get();
}

void StageOptimizer::load(const std::string& ckpt_dir) {
  if (zero_ == 0) return load_checkpoint_optimizer(ckpt_dir, *opt_);
  auto full = make_adamw(all_, oc_);  // the full state, then only this rank's tensors are kept
  load_checkpoint_optimizer(ckpt_dir, *full);
  distributed::keep_owned_state(*full, *opt_, all_.params, owner_, w_->rank());
}

int64_t StageOptimizer::state_bytes() const {
  int64_t bytes = 0;
  for (auto& g : opt_->param_groups())
    for (auto& p : g.params()) bytes += 2 * p.numel() * static_cast<int64_t>(p.element_size());
  return bytes;
}

int64_t StageOptimizer::grad_bytes() const {
  int64_t bytes = buckets_ ? buckets_->buffer_bytes() : 0;  // persistent below ZeRO-2
  for (size_t i = 0; i < all_.params.size(); ++i)
    if (zero_ < 2 || owner_[i] == w_->rank()) bytes += nbytes(all_.params[i]);
  return bytes;
}

std::string StageOptimizer::memory_report() {
  const double mb = 1024.0 * 1024.0;
  if (!w_)
    return fmt::format("AdamW state {:.2f} MB, gradients {:.2f} MB", static_cast<double>(state_bytes()) / mb,
                       static_cast<double>(grad_bytes()) / mb);
  const auto n = static_cast<size_t>(w_->size());
  std::vector<int64_t> per(2 * n, 0);
  per[static_cast<size_t>(w_->rank())] = state_bytes();
  per[n + static_cast<size_t>(w_->rank())] = grad_bytes();
  distributed::sum_over_ranks(w_, per);
  const char* how[] = {"replicated", "ZeRO-1 sharded", "ZeRO-2 sharded"};
  std::string s = fmt::format("AdamW state per rank ({}):", how[zero_]);
  for (size_t r = 0; r < n; ++r) s += fmt::format(" {}={:.2f} MB", r, static_cast<double>(per[r]) / mb);
  s += fmt::format("; gradients per rank after the reduction ({}, bucket buffers included):", zero_ == 2 ? how[2] : how[0]);
  for (size_t r = 0; r < n; ++r) s += fmt::format(" {}={:.2f} MB", r, static_cast<double>(per[n + r]) / mb);
  return s + "; " + buckets_->describe();
}

}  // namespace phantom::recipe
