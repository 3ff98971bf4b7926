#include "trainers/cli/step_timing.h"

#include <algorithm>
#include <chrono>

namespace phantom::cli {

using Clock = std::chrono::steady_clock;

std::vector<data::EncodedPreference> bench_questions(int64_t n, int64_t prompt, int64_t answer, int64_t rejected,
                                                     int64_t vocab) {
  std::vector<data::EncodedPreference> out;
  auto ids = [&](int64_t k) {
    auto t = torch::randint(10, vocab, {k}, torch::kInt64);
    std::vector<int32_t> v(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) v[static_cast<size_t>(i)] = static_cast<int32_t>(t[i].item<int64_t>());
    return v;
  };
  for (int64_t q = 0; q < n; ++q) {
    data::EncodedPreference p;
    p.prompt = ids(prompt);
    for (int64_t a = 0; a <= rejected; ++a) p.answers.push_back(ids(answer));
    out.push_back(std::move(p));
  }
  return out;
}

data::Batch chosen_sft_batch(const std::vector<data::EncodedPreference>& qs) {
  std::vector<data::EncodedConversation> sft;
  for (const auto& q : qs) sft.push_back(data::chosen_as_conversation(q));
  return data::collate_sft(sft, {}, 0);
}

PoLayouts po_layouts(const std::vector<data::EncodedPreference>& qs) {
  return {chosen_sft_batch(qs), data::collate_preference(qs, {}, 0, true), data::collate_preference(qs, {}, 0, false)};
}

data::Batch batch_to(data::Batch b, const c10::Device& device) {
  for (at::Tensor* t : {&b.input_ids, &b.attention_mask, &b.positions, &b.pixel_values})
    if (t->defined()) *t = t->to(device);
  return b;
}

void sync(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

double one_step(PhantomModelImpl& m, const data::Batch& b, const recipe::LossConfig& lc, torch::optim::Optimizer& opt,
                const std::vector<at::Tensor>& params, const AutocastState& ac, const c10::Device& device) {
  sync(device);
  const auto t0 = Clock::now();
  recipe::LossOut out;
  {
    AutocastScope scope(ac);
    out = recipe::batch_loss(m, b, lc, {b.num_sft_tokens, b.num_questions});
  }
  out.loss.backward();
  torch::nn::utils::clip_grad_norm_(params, 1.0);
  opt.step();
  opt.zero_grad();
  sync(device);
  return 1e3 * std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<StepTiming> time_interleaved(PhantomModelImpl& m, const std::vector<const data::Batch*>& batches,
                                         const std::vector<recipe::LossConfig>& losses, torch::optim::Optimizer& opt,
                                         const std::vector<at::Tensor>& params, const AutocastState& ac,
                                         const c10::Device& device, int64_t warmup, int64_t steps) {
  std::vector<std::vector<double>> ms(batches.size());
  for (int64_t r = 0; r < warmup + steps; ++r)
    for (size_t i = 0; i < batches.size(); ++i) {
      const double t = one_step(m, *batches[i], losses[i], opt, params, ac, device);
      if (r >= warmup) ms[i].push_back(t);
    }
  std::vector<StepTiming> out;
  for (size_t i = 0; i < batches.size(); ++i)
    out.push_back({median(ms[i]), batches[i]->num_tokens, batches[i]->targets.target.numel()});
  return out;
}

}  // namespace phantom::cli
