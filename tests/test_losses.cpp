// Golden tests of trainers/recipe/losses.*: compute_loss on hand-built log-probs and batch_loss through a tiny
// model, for every loss kind, against tests/tools/loss_reference.py (the papers' equations in float64, written
// without torch and without looking at losses.cpp; docs/paper.md), plus closed-form values and bad inputs.
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "phantom/io/checkpoint.h"
#include "phantom/model/model.h"
#include "tests/helpers.h"
#include "tests/tiny.h"
#include "trainers/recipe/losses.h"

using namespace phantom;
using nlohmann::json;
using phantom::test::TempDir;

namespace {

// One answer of a hand-built batch: its question, index (0 = chosen), token log-probs and reference log-prob.
struct Answer {
  int64_t question, answer;
  std::vector<double> logps;
  double ref;
};

// Three questions: q0 with 1 rejected answer, q1 with 3, q2 with 2; answers of 1 to 7 tokens. The values are
// arbitrary but spread: near-certain tokens (ORPO's odds), long and short answers (the length normalisation of
// SimPO), rejected answers both above and below the chosen one (reward accuracy < 1).
const std::vector<Answer> kAnswers = {
    {0, 0, {-0.11, -0.52, -0.03, -1.40}, -2.31},
    {0, 1, {-0.90, -2.20, -0.35, -0.07, -1.10, -0.64, -3.05}, -7.90},
    {1, 0, {-0.004, -0.012, -0.001}, -0.30},
    {1, 1, {-2.70}, -1.25},
    {1, 2, {-0.21, -0.33, -0.18, -0.95, -0.40}, -1.75},
    {1, 3, {-0.0005, -0.002}, -0.01},
    {2, 0, {-1.30, -0.85, -2.10, -0.45, -0.60, -1.95}, -6.20},
    {2, 1, {-0.70, -0.25}, -1.40},
    {2, 2, {-3.60, -0.15, -2.45, -0.80}, -5.10},
};

// The batch of kAnswers as compute_loss reads it: segments in (question, answer) order as the collators make
// them, tokens in a scrambled order (the loss must not depend on where a token sits in the batch).
struct HandBatch {
  data::Batch batch;
  at::Tensor logp, ref;  // (T,) float64, (S,) float64
};

HandBatch hand_batch() {
  std::vector<int64_t> seg_q, seg_a, tok_seg;
  std::vector<double> tok_logp, ref;
  for (size_t s = 0; s < kAnswers.size(); ++s) {
    seg_q.push_back(kAnswers[s].question), seg_a.push_back(kAnswers[s].answer), ref.push_back(kAnswers[s].ref);
    for (double v : kAnswers[s].logps) tok_seg.push_back(static_cast<int64_t>(s)), tok_logp.push_back(v);
  }
  std::vector<size_t> order(tok_seg.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = (i * 7) % order.size();  // 7 is prime to the 34 tokens
  std::vector<int64_t> seg2;
  std::vector<double> logp2;
  for (size_t i : order) seg2.push_back(tok_seg[i]), logp2.push_back(tok_logp[i]);
  REQUIRE(std::set<size_t>(order.begin(), order.end()).size() == order.size());  // a permutation

  HandBatch h;
  auto& b = h.batch;
  b.preference = true;
  b.num_questions = 3;
  b.seg_question = torch::tensor(seg_q, torch::kInt64);
  b.seg_answer = torch::tensor(seg_a, torch::kInt64);
  b.targets.segment = torch::tensor(seg2, torch::kInt64);
  b.targets.num_segments = static_cast<int64_t>(kAnswers.size());
  b.num_sft_tokens = 4 + 3 + 6;
  h.logp = torch::tensor(logp2, torch::kFloat64);
  h.ref = torch::tensor(ref, torch::kFloat64);
  return h;
}

// The loss cases: the paper's beta 2 / gamma 0.5, and other values so that a swapped or ignored parameter shows.
std::vector<recipe::LossConfig> cases() {
  std::vector<recipe::LossConfig> out;
  using K = recipe::LossKind;
  for (K kind : {K::sft, K::po, K::simpo, K::dpo, K::ipo, K::orpo}) {
    out.push_back({kind, 2.0, 0.5, 1.0, 0.1});
    out.push_back({kind, 0.3, 1.2, 0.6, 0.7});
  }
  return out;
}

json cases_json(const std::vector<recipe::LossConfig>& cs) {
  json j = json::array();
  for (auto& c : cs) j.push_back({{"kind", recipe::loss_kind_name(c.kind)}, {"beta", c.beta}, {"gamma", c.gamma},
                 {"sft_weight", c.sft_weight}, {"orpo_lambda", c.orpo_lambda}});
  return j;
}

// Runs loss_reference.py `command` on `spec` and returns its list of results (one per case).
json reference(const TempDir& dir, const std::string& command, const json& spec) {
  std::ofstream(dir.str("spec.json")) << spec.dump();
  const std::string cmd = std::string(PHANTOM_PYTHON) + " " + test::source_path("tests/tools/loss_reference.py") +
                          " " + command + " " + dir.str("spec.json") + " > " + dir.str("ref.json") + " 2> " +
                          dir.str("ref.log");
  const int rc = std::system(cmd.c_str());
  std::ifstream log(dir.str("ref.log"));
  INFO(std::string(std::istreambuf_iterator<char>(log), {}));
  REQUIRE(rc == 0);
  json out;
  std::ifstream(dir.str("ref.json")) >> out;
  REQUIRE(out.is_array());
  return out;
}

// Loss and every metric sum the reference computes, within `tol` (absolute, relative above 1).
void check_against(const recipe::LossOut& got, const json& want, double tol) {
  REQUIRE(want.contains("loss"));
  const double loss = got.loss.item<double>();
  CHECK(std::abs(loss - want["loss"].get<double>()) <= tol * std::max(1.0, std::abs(loss)));
  for (auto& [key, value] : want.items()) {
    if (key == "loss") continue;
    INFO(key);
    REQUIRE(got.sums.count(key));
    CHECK(std::abs(got.sums.at(key) - value.get<double>()) <= tol * std::max(1.0, std::abs(value.get<double>())));
  }
}

}  // namespace

TEST_CASE("losses: compute_loss of sft/po/simpo/dpo/ipo/orpo equals the papers' equations (loss_reference.py, 1e-6)") {
  TempDir dir;
  auto h = hand_batch();
  json answers = json::array();
  for (auto& a : kAnswers) answers.push_back({{"question", a.question}, {"answer", a.answer}, {"logps", a.logps}, {"ref", a.ref}});
  // The batch's own counts, and the counts of a step of several micro-batches (losses divide by the global ones).
  for (recipe::StepCounts g : {recipe::StepCounts{13, 3}, recipe::StepCounts{40, 8}}) {
    INFO("global counts: " << g.sft_tokens << " tokens, " << g.questions << " questions");
    const auto cs = cases();
    const json want = reference(dir, "loss", {{"cases", cases_json(cs)}, {"answers", answers},
                                              {"sft_tokens", g.sft_tokens}, {"questions", g.questions}});
    REQUIRE(want.size() == cs.size());
    for (size_t i = 0; i < cs.size(); ++i) {
      INFO(cs[i].kind << " beta " << cs[i].beta << " gamma " << cs[i].gamma << " sft_weight " << cs[i].sft_weight);
      check_against(recipe::compute_loss(h.logp, h.batch, cs[i], g, h.ref), want[i], 1e-6);
      // float32 log-probs (what training uses) agree to float32 precision.
      auto out32 = recipe::compute_loss(h.logp.to(torch::kFloat), h.batch, cs[i], g, h.ref.to(torch::kFloat));
      CHECK(out32.loss.item<double>() == Approx(want[i]["loss"].get<double>()).epsilon(1e-5));
    }
  }
}

TEST_CASE("losses: an SFT batch is the token mean of the cross-entropy, over the global token count") {
  TempDir dir;
  auto h = hand_batch();
  data::Batch b;  // the same tokens as an SFT batch: every token supervised
  b.targets.segment = torch::zeros_like(h.batch.targets.segment);
  b.targets.num_segments = 1;
  json answers = json::array();
  for (auto& a : kAnswers) answers.push_back({{"logps", a.logps}});
  const std::vector<recipe::LossConfig> cs = {{recipe::LossKind::sft, 2.0, 0.5, 1.0}, {recipe::LossKind::sft, 2.0, 0.5, 0.6}};
  const json want = reference(dir, "loss", {{"cases", cases_json(cs)}, {"answers", answers}, {"sft", true},
                                            {"sft_tokens", 50}, {"questions", 0}});
  for (size_t i = 0; i < cs.size(); ++i) check_against(recipe::compute_loss(h.logp, b, cs[i], {50, 0}), want[i], 1e-6);
}

TEST_CASE("losses: closed forms: equal answers give PO = CE + log(1 + e^gamma), DPO at the reference log 2, IPO 1/(4 beta^2)") {
  // Every answer of every question has the same per-token log-prob, so the average log-probs are equal and the
  // SimPO term is -log sigmoid(-gamma); the reference equals the policy, so DPO's term is log 2 and IPO's 1/(4 beta^2).
  auto h = hand_batch();
  h.logp.fill_(-0.75);
  auto seg = h.batch.targets.segment;
  auto seg_sum = torch::zeros({h.batch.targets.num_segments}, h.logp.options()).index_add(0, seg, h.logp);
  const recipe::StepCounts g{13, 3};
  const double ce = 0.75 * 13 / 13.0;
  CHECK(recipe::compute_loss(h.logp, h.batch, {recipe::LossKind::po, 2.0, 0.5, 1.0}, g).loss.item<double>() ==
        Approx(ce + std::log1p(std::exp(0.5))).epsilon(1e-12));
  CHECK(recipe::compute_loss(h.logp, h.batch, {recipe::LossKind::simpo, 2.0, 0.5, 1.0}, g).loss.item<double>() ==
        Approx(std::log1p(std::exp(0.5))).epsilon(1e-12));
  CHECK(recipe::compute_loss(h.logp, h.batch, {recipe::LossKind::dpo, 2.0, 0.5, 1.0}, g, seg_sum).loss.item<double>() ==
        Approx(std::log(2.0)).epsilon(1e-12));
  CHECK(recipe::compute_loss(h.logp, h.batch, {recipe::LossKind::ipo, 2.0, 0.5, 1.0}, g, seg_sum).loss.item<double>() ==
        Approx(1.0 / 16.0).epsilon(1e-12));
  // ORPO with equal odds: CE + lambda log 2 (lambda its own key, beta does not enter the loss).
  CHECK(recipe::compute_loss(h.logp, h.batch, {recipe::LossKind::orpo, 2.0, 0.5, 1.0, 0.25}, g).loss.item<double>() ==
        Approx(ce + 0.25 * std::log(2.0)).epsilon(1e-12));
  CHECK(recipe::compute_loss(h.logp, h.batch, {recipe::LossKind::orpo, 7.0, 0.5, 1.0, 0.25}, g).loss.item<double>() ==
        Approx(ce + 0.25 * std::log(2.0)).epsilon(1e-12));
}

TEST_CASE("losses: bad inputs are errors that say what is missing") {
  auto h = hand_batch();
  const recipe::StepCounts g{13, 3};
  CHECK_THROWS_WITH(recipe::compute_loss(h.logp, h.batch, {recipe::LossKind::dpo, 2.0, 0.5, 1.0}, g),
                    Catch::Contains("dpo needs reference log-probabilities"));
  CHECK_THROWS_WITH(recipe::compute_loss(h.logp, h.batch, {recipe::LossKind::ipo, 2.0, 0.5, 1.0}, g),
                    Catch::Contains("ipo needs reference log-probabilities"));
  CHECK_THROWS_WITH(recipe::parse_loss_kind("kto", "stages.1.loss"),
                    Catch::Contains("stages.1.loss: expected one of sft, po, simpo, dpo, ipo, orpo, got 'kto'"));
  data::Batch sft;
  sft.targets.segment = torch::zeros_like(h.batch.targets.segment);
  sft.targets.num_segments = 1;
  CHECK_THROWS_WITH(recipe::compute_loss(h.logp, sft, {recipe::LossKind::po, 2.0, 0.5, 1.0}, g),
                    Catch::Contains("loss 'po' needs preference data"));
}

namespace {

// Token ids 10..63 (above the tiny vocabulary's special ids) from their own seeded generator.
std::vector<int32_t> seeded_ids(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> d(10, 63);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

}  // namespace

TEST_CASE("losses: batch_loss through a tiny model equals the reference forward + the papers' equations (1 and 3 rejected)") {
  // The C++ side: shared-prefix batch, the model's fp32 forward, log-probs at the supervised rows only. The Python
  // side: the saved HF checkpoint read by model_reference.py's plain forward in float64, one row per answer.
  torch::manual_seed(0);
  PhantomModel model(test::tiny_vlm_config());
  init_weights(*model, 0.2);
  model->eval();
  const int64_t tpt = model->tokens_per_tile();
  std::vector<data::EncodedPreference> samples(2);
  std::vector<at::Tensor> pixels;
  const std::vector<std::vector<size_t>> lengths = {{4, 6}, {5, 2, 7, 3}};  // q0: 1 rejected, q1: 3 rejected
  std::vector<std::vector<double>> refs = {{-9.5, -14.0}, {-11.0, -6.5, -17.0, -8.0}};
  json questions = json::array();
  for (size_t q = 0; q < samples.size(); ++q) {
    auto& s = samples[q];
    s.prompt = {7};
    for (int64_t i = 0; i < tpt; ++i) s.prompt.push_back(5);  // image_token_index of the tiny config
    auto text = seeded_ids(4 + q, static_cast<uint32_t>(100 + q));
    s.prompt.insert(s.prompt.end(), text.begin(), text.end());
    for (size_t a = 0; a < lengths[q].size(); ++a) s.answers.push_back(seeded_ids(lengths[q][a], static_cast<uint32_t>(10 * q + a)));
    pixels.push_back(torch::randn({1, 3, 28, 28}));
    questions.push_back({{"prompt", s.prompt}, {"answers", s.answers}, {"refs", refs[q]}});
  }
  auto b = data::collate_preference(samples, pixels, 0, /*shared_prefix=*/true);
  std::vector<double> ref_flat;
  for (auto& r : refs) ref_flat.insert(ref_flat.end(), r.begin(), r.end());
  const auto ref = torch::tensor(ref_flat, torch::kFloat);

  TempDir dir;
  save_phantom(*model, dir.str("model"));
  write_checkpoint_tensors(dir.str("pixels.safetensors"), {{"q0", pixels[0]}, {"q1", pixels[1]}});
  const auto cs = cases();
  const json want = reference(dir, "model-loss", {{"cases", cases_json(cs)}, {"model", dir.str("model")},
                                                  {"pixels", dir.str("pixels.safetensors")}, {"questions_in", questions},
                                                  {"sft_tokens", b.num_sft_tokens}, {"questions", b.num_questions}});
  REQUIRE(want.size() == cs.size());
  torch::NoGradGuard ng;
  double worst = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    INFO(cs[i].kind << " beta " << cs[i].beta << " gamma " << cs[i].gamma);
    // fp32 forward against a float64 reference: summed log-probs of up to 7 tokens carry ~1e-6 of rounding.
    auto out = recipe::batch_loss(*model, b, cs[i], {b.num_sft_tokens, b.num_questions}, ref);
    check_against(out, want[i], 2e-5);
    worst = std::max(worst, std::abs(out.loss.item<double>() - want[i]["loss"].get<double>()));
  }
  std::printf("batch_loss vs the float64 reference: max |loss difference| %.2e over %zu cases\n", worst, cs.size());
}
