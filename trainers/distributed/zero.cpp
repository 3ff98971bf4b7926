// ZeRO-1/2 over whole tensors (zero.h).
#include "trainers/distributed/zero.h"

#include <algorithm>
#include <numeric>

namespace phantom::distributed {

std::vector<int> partition_by_size(const std::vector<at::Tensor>& params, int world) {
  const size_t n = params.size();
  std::vector<int> owner(n, 0);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return params[a].numel() > params[b].numel(); });
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  for (size_t i : order) {
    const auto r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = static_cast<int>(r), load[r] += params[i].numel();
  }
  return owner;
}

void broadcast_from_owners(World& w, const std::vector<at::Tensor>& params, const std::vector<int>& owner) {
  torch::NoGradGuard ng;
  for (int r = 0; r < w.size(); ++r) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < params.size(); ++i)
      if (owner[i] == r) idx.push_back(i);
    if (idx.empty()) continue;
    std::vector<at::Tensor> parts;
    for (auto i : idx) parts.push_back(params[i].detach().reshape({-1}).to(at::kFloat));
    auto flat = torch::cat(parts);
    w.broadcast(flat, r);
    if (r == w.rank()) continue;
    int64_t off = 0;
    for (auto i : idx) {
      auto p = params[i].detach();
      p.copy_(flat.narrow(0, off, p.numel()).view(p.sizes()));
      off += p.numel();
    }
  }
}

double clip_owned_grad_norm(World& w, const std::vector<at::Tensor>& params, const std::vector<int>& owner,
                            double max_norm) {
  torch::NoGradGuard ng;
  const auto n = static_cast<int64_t>(params.size());
  auto v = torch::zeros({2 * n}, torch::TensorOptions().dtype(at::kFloat).device(w.device()));
  std::vector<at::Tensor> mine;
  for (int64_t i = 0; i < n; ++i) {
    const auto& p = params[static_cast<size_t>(i)];
    if (owner[static_cast<size_t>(i)] != w.rank() || !p.grad().defined()) continue;
    v[i].copy_(p.grad().data().norm(2.0));
    v[n + i].fill_(1);
    mine.push_back(p);
  }
  w.all_reduce(v);
  const auto norms = v.narrow(0, 0, n).masked_select(v.narrow(0, n, n) > 0.5f);
  if (norms.numel() == 0) return 0.0;
  const auto total = norms.numel() == 1 ? norms[0] : norms.norm(2.0);
  const auto coef = torch::clamp(max_norm / (total + 1e-6), std::nullopt, 1.0);
  for (auto& p : mine) p.grad().data().mul_(coef);
  return total.item().toDouble();
}

void gather_adamw_state(World& w, const std::vector<at::Tensor>& params, const std::vector<int>& owner,
                        torch::optim::AdamW& mine, torch::optim::AdamW* full) {
  const int me = w.rank();
  if (me == 0) full->state().clear();
  for (int r = 0; r < w.size(); ++r) {
    std::vector<size_t> idx;
    int64_t numel = 0;
    for (size_t i = 0; i < params.size(); ++i)
      if (owner[i] == r) idx.push_back(i), numel += params[i].numel();
    if (idx.empty() || (me != 0 && me != r)) continue;
    at::Tensor moments, steps;
    if (me == r) {  // this rank's moments (zeros and step -1 for a tensor without state yet)
      std::vector<at::Tensor> parts;
      std::vector<int64_t> st;
      for (auto i : idx) {
        const auto& p = params[i];
        auto it = mine.state().find(p.unsafeGetTensorImpl());
        if (it == mine.state().end()) {
          parts.push_back(torch::zeros({2 * p.numel()}, torch::TensorOptions().dtype(at::kFloat).device(p.device())));
          st.push_back(-1);
          continue;
        }
        auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
        parts.push_back(s.exp_avg().reshape({-1}).to(at::kFloat));
        parts.push_back(s.exp_avg_sq().reshape({-1}).to(at::kFloat));
        st.push_back(s.step());
      }
      moments = torch::cat(parts);
      steps = torch::tensor(st, torch::kInt64).to(w.device());
      if (r != 0) w.send(moments, 0), w.send(steps, 0);
    } else {
      moments = torch::empty({2 * numel}, torch::TensorOptions().dtype(at::kFloat).device(w.device()));
      steps = torch::empty({static_cast<int64_t>(idx.size())}, torch::TensorOptions().dtype(at::kLong).device(w.device()));
      w.recv(moments, r), w.recv(steps, r);
    }
    if (me != 0) continue;
    const auto st = steps.cpu();
    int64_t off = 0;
    for (size_t j = 0; j < idx.size(); ++j) {
      const auto& p = params[idx[j]];
      const int64_t step = st[static_cast<int64_t>(j)].item<int64_t>();
      if (step >= 0) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(step);
        s->exp_avg(moments.narrow(0, off, p.numel()).view(p.sizes()).to(p.scalar_type()).clone());
        s->exp_avg_sq(moments.narrow(0, off + p.numel(), p.numel()).view(p.sizes()).to(p.scalar_type()).clone());
        full->state()[p.unsafeGetTensorImpl()] = std::move(s);
      }
      off += 2 * p.numel();
    }
  }
}

void keep_owned_state(torch::optim::AdamW& full, torch::optim::AdamW& mine, const std::vector<at::Tensor>& params,
                      const std::vector<int>& owner, int rank) {
  for (size_t i = 0; i < params.size(); ++i) {
    if (owner[i] != rank) continue;
    auto* key = params[i].unsafeGetTensorImpl();
    auto it = full.state().find(key);
    if (it != full.state().end()) mine.state()[key] = std::move(it->second);
  }
}

}  // namespace phantom::distributed
