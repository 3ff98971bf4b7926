// The chunked LM head (trainers/recipe/head_loss.h) against the unfused formula log_softmax(h W^T)[y] computed
// by plain autograd, and the fused AdamW against torch::optim::AdamW.
#include "tests/test_pch.h"

#include "phantom/model/runtime.h"
#include "trainers/recipe/head_loss.h"
#include "trainers/recipe/optim.h"

using namespace phantom;

namespace {

struct HeadCase {
  at::Tensor rows, weight, target;
  HeadCase(int64_t T, int64_t C, int64_t V, uint64_t seed) {
    torch::manual_seed(static_cast<int64_t>(seed));
    rows = torch::randn({T, C}, torch::kDouble).to(torch::kFloat).requires_grad_(true);
    weight = (0.5 * torch::randn({V, C})).requires_grad_(true);
    target = torch::randint(0, V, {T}, torch::kInt64);
  }
  // The reference: full logits, log_softmax, gather (what eager PyTorch does).
  at::Tensor reference_logp() const {
    return torch::mm(rows, weight.t()).log_softmax(-1).gather(1, target.unsqueeze(1)).squeeze(1);
  }
};

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST_CASE("head: chunked log-probs equal log_softmax(h W^T)[y] in value and gradients, any chunk size") {
  HeadCase c(37, 16, 301, 1);
  auto g = torch::randn({37});  // an arbitrary loss of the log-probs: sum g_t logp_t
  auto ref = c.reference_logp();
  (ref * g).sum().backward();
  auto ref_gr = c.rows.grad().clone(), ref_gw = c.weight.grad().clone();
  for (int64_t chunk : {1, 5, 16, 37, 100}) {
    INFO("chunk " << chunk);
    c.rows.mutable_grad().reset(), c.weight.mutable_grad().reset();
    auto logp = recipe::head_logps(c.rows, c.weight, c.target, chunk);
    CHECK(max_diff(logp, ref) < 1e-5);
    (logp * g).sum().backward();
    CHECK(max_diff(c.rows.grad(), ref_gr) < 1e-5);
    CHECK(max_diff(c.weight.grad(), ref_gw) < 1e-5);
  }
  // A frozen head (PO step 1): d logp / d h kept from the forward, no recomputation; same gradient.
  c.weight.set_requires_grad(false);
  c.rows.mutable_grad().reset(), c.weight.mutable_grad().reset();
  (recipe::head_logps(c.rows, c.weight, c.target, 8) * g).sum().backward();
  CHECK(max_diff(c.rows.grad(), ref_gr) < 1e-5);
  CHECK(!c.weight.grad().defined());
}

TEST_CASE("head: chunked cross-entropy equals the mean token cross-entropy, gradients computed in the forward") {
  HeadCase c(50, 24, 513, 2);
  auto ref = torch::nn::functional::cross_entropy(torch::mm(c.rows, c.weight.t()), c.target);
  ref.backward();
  auto ref_gr = c.rows.grad().clone(), ref_gw = c.weight.grad().clone();
  c.rows.mutable_grad().reset(), c.weight.mutable_grad().reset();
  auto [loss, logp] = recipe::head_cross_entropy(c.rows, c.weight, c.target, 1.0 / 50, 7);
  CHECK(std::abs(loss.item<double>() - ref.item<double>()) < 1e-5);
  CHECK(std::abs(-logp.sum().item<double>() / 50 - ref.item<double>()) < 1e-5);
  CHECK(!logp.requires_grad());
  (3.0 * loss).backward();  // the saved gradients scale with the incoming one
  CHECK(max_diff(c.rows.grad(), 3.0 * ref_gr) < 1e-5);
  CHECK(max_diff(c.weight.grad(), 3.0 * ref_gw) < 1e-5);
  // No grad mode: the value only.
  torch::NoGradGuard ng;
  CHECK(std::abs(recipe::head_cross_entropy(c.rows, c.weight, c.target, 1.0 / 50).first.item<double>() - ref.item<double>()) < 1e-5);
}

TEST_CASE("head: under bf16 autocast the chunked head matches the unfused bf16 path") {
  HeadCase c(20, 32, 257, 3);
  at::Tensor ref, ours;
  {
    AutocastScope bf16(AutocastState::for_compute(at::kBFloat16, c10::Device(c10::kCPU)));
    ref = torch::mm(c.rows, c.weight.t()).to(torch::kFloat).log_softmax(-1).gather(1, c.target.unsqueeze(1)).squeeze(1);
    ours = recipe::head_logps(c.rows, c.weight, c.target, 6);
  }
  CHECK(max_diff(ours, ref) < 1e-3);
  CHECK(max_diff(ours, c.reference_logp()) > 1e-6);  // it really ran in bf16
}

TEST_CASE("fused AdamW: the update of torch::optim::AdamW within float rounding, state interchangeable") {
  torch::manual_seed(4);
  auto make = [] {
    torch::manual_seed(5);
    return std::vector<at::Tensor>{torch::randn({7, 5}).requires_grad_(true), torch::randn({5}).requires_grad_(true)};
  };
  auto a = make(), b = make();
  auto opts = torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1);
  torch::optim::AdamW ref(a, opts);
  recipe::FusedAdamW fused(b, opts);
  for (int step = 0; step < 5; ++step) {
    auto g0 = torch::randn({7, 5}), g1 = torch::randn({5});
    a[0].mutable_grad() = g0.clone(), a[1].mutable_grad() = g1.clone();
    b[0].mutable_grad() = g0.clone(), b[1].mutable_grad() = g1.clone();
    ref.step(), fused.step();
  }
  for (size_t i = 0; i < a.size(); ++i) CHECK(max_diff(a[i], b[i]) < 1e-6);
  CHECK(max_diff(a[0], make()[0]) > 1e-2);  // the parameters moved
  // Same state layout: a checkpoint of one loads into the other.
  std::ostringstream buf;
  torch::serialize::OutputArchive out;
  fused.save(out);
  out.save_to(buf);
  std::istringstream in_buf(buf.str());
  torch::serialize::InputArchive in;
  in.load_from(in_buf);
  torch::optim::AdamW back(make(), opts);
  back.load(in);
  auto& st = static_cast<torch::optim::AdamWParamState&>(*back.state().begin()->second);
  CHECK(st.step() == 5);
}
