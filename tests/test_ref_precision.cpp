// DPO / IPO reference log-probs (precomputed once, cached on disk, keyed by data + model) and mixed precision
// (bf16 autocast with fp32 master weights): cached values equal a fresh forward, the step-0 DPO loss is log 2,
// resume keeps using the cache, stale keys are caught; bf16 is close to fp32 and fp32 is unchanged.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "phantom/io/checkpoint.h"
#include "phantom/model/model.h"
#include "phantom/model/runtime.h"
#include "phantom/io/safetensors.h"
#include "tests/helpers.h"
#include "tests/tiny.h"
#include "trainers/recipe/losses.h"
#include "trainers/recipe/ref_logps.h"
#include "trainers/recipe/run_config.h"
#include "trainers/recipe/trainer.h"

using namespace phantom;
using phantom::test::grads_of;
using phantom::test::run;
using phantom::test::TempDir;
using Catch::Matchers::Contains;

namespace {

// Preference samples with an image each; answers of different lengths so batches pad differently.
std::vector<data::EncodedPreference> make_samples(int64_t n, int64_t tokens_per_tile) {
  std::vector<data::EncodedPreference> out;
  for (int64_t s = 0; s < n; ++s) {
    data::EncodedPreference p;
    p.prompt = {7};
    for (int64_t i = 0; i < tokens_per_tile; ++i) p.prompt.push_back(5);
    for (int64_t i = 0; i < 3 + s % 4; ++i) p.prompt.push_back(static_cast<int32_t>(10 + (s * 7 + i * 3) % 50));
    for (int64_t a = 0; a < 2 + s % 2; ++a) {
      std::vector<int32_t> ans;
      for (int64_t k = 0; k < 2 + (s + a) % 5; ++k) ans.push_back(static_cast<int32_t>(10 + (s * 13 + a * 5 + k) % 50));
      p.answers.push_back(ans);
    }
    out.push_back(p);
  }
  return out;
}

data::Batch batch_of(const std::vector<data::EncodedPreference>& all, const std::vector<at::Tensor>& px,
                     const std::vector<size_t>& idx, bool shared) {
  std::vector<data::EncodedPreference> s;
  std::vector<at::Tensor> p;
  std::vector<int64_t> ids;
  for (auto i : idx) s.push_back(all[i]), p.push_back(px[i]), ids.push_back(static_cast<int64_t>(i));
  auto b = data::collate_preference(s, p, 0, shared);
  b.sample_index = torch::tensor(ids, torch::kInt64);
  return b;
}

}  // namespace

TEST_CASE("ref logps: the cached table equals a fresh forward of other batches, round-trips, stale keys are named") {
  torch::manual_seed(3);
  PhantomModel model(test::tiny_vlm_config());
  init_weights(*model, 0.2);
  const auto samples = make_samples(10, model->tokens_per_tile());
  std::vector<at::Tensor> px;
  for (size_t i = 0; i < samples.size(); ++i) px.push_back(torch::randn({1, 3, 28, 28}));
  recipe::MakeBatch make = [&](const std::vector<size_t>& idx) { return batch_of(samples, px, idx, true); };
  auto table = recipe::compute_ref_table(*model, 10, 3, 4, make, c10::Device(c10::kCPU), AutocastState{});
  REQUIRE(table.sizes() == at::IntArrayRef({10, 3}));
  // Samples with 2 answers have no third entry.
  CHECK(std::isnan(table[0][2].item<float>()));
  CHECK_FALSE(std::isnan(table[1][2].item<float>()));

  // A shuffled batch of another composition (other padding), both layouts: the lookup equals its fresh forward.
  for (bool shared : {true, false}) {
    INFO("shared " << shared);
    torch::NoGradGuard ng;
    auto b = batch_of(samples, px, {7, 2, 9}, shared);
    auto fresh = recipe::segment_logps(*model, b);
    auto cached = recipe::lookup_ref_logps(table, b);
    CHECK((fresh - cached).abs().max().item<double>() < 1e-5);
  }

  // On disk: the values round-trip bitwise with their key; the key's parts name what changed.
  TempDir dir;
  recipe::RefTable t;
  t.logps = table;
  t.key.parts = {{"annotations", "a1"}, {"model", recipe::weights_identity(*model)}, {"precision", "Float"}};
  recipe::save_ref_table(dir.str("c/ref.safetensors"), t);
  auto back = recipe::load_ref_table(dir.str("c/ref.safetensors"));
  REQUIRE(back.has_value());
  CHECK(back->key.digest() == t.key.digest());
  CHECK(torch::equal(back->logps.isnan(), table.isnan()));
  CHECK(torch::equal(back->logps.nan_to_num(0), table.nan_to_num(0)));
  CHECK_FALSE(recipe::load_ref_table(dir.str("c/none.safetensors")).has_value());

  auto other = t.key;
  {
    torch::NoGradGuard ng;
    model->language_model->parameters()[0].add_(1e-3);  // any weight change changes the identity
  }
  other.parts["model"] = recipe::weights_identity(*model);
  CHECK(other.digest() != t.key.digest());
  CHECK(t.key.differences(other) == "model");
  other.parts["annotations"] = "a2";
  CHECK(t.key.differences(other) == "annotations, model");
  // The digest is a function of the bytes, whatever the chunking.
  const std::string text = "the quick brown fox jumps over the lazy dog";
  recipe::Digest whole, parts;
  whole.bytes(text.data(), text.size());
  parts.bytes(text.data(), 5).bytes(text.data() + 5, 11).bytes(text.data() + 16, text.size() - 16);
  CHECK(whole.hex() == parts.hex());
  CHECK(recipe::Digest().str("ab").str("c").hex() != recipe::Digest().str("a").str("bc").hex());

  // A batch for samples the table does not cover is an error, not a silent value.
  auto b = batch_of(samples, px, {0, 1}, true);
  CHECK_THROWS_WITH(recipe::lookup_ref_logps(table.narrow(0, 0, 1), b), Contains("stale cache"));
  // `reference:` belongs to dpo/ipo stages and must exist.
  const auto demo = test::source_path("configs/demo.yaml");
  CHECK_THROWS_WITH(recipe::load_run_config(demo, {"stages.0.reference=" + dir.str()}),
                    Contains("stages.0.reference: only dpo and ipo stages have a reference model"));
  CHECK_THROWS_WITH(recipe::load_run_config(demo, {"stages.0.loss=dpo", "stages.0.reference=" + dir.str("nope")}),
                    Contains("stages.0.reference: checkpoint not found"));
  // A file whose stored key does not match its parts is rejected.
  st::save(dir.str("bad.safetensors"), {{"logps", table}}, {{"key", "0"}, {"key.model", "x"}});
  CHECK_THROWS_WITH(recipe::load_ref_table(dir.str("bad.safetensors")), Contains("key metadata inconsistent"));
}

namespace {

struct DemoData : test::DemoDataDir {
  DemoData() : DemoDataDir(24) {}
  // One stage of `loss` on the demo data (3 rejected answers per question in the demo triples or fewer).
  recipe::RunConfig config(const std::string& name, const std::string& loss, std::vector<std::string> extra = {}) const {
    const std::string d = dir.str("data");
    const std::string yaml = dir.file("one-" + loss + ".yaml", "base: " + test::source_path("configs/demo.yaml") +
                                                                  "\nstages:\n  - name: po\n    loss: " + loss +
                                                                  "\n    trainable: [\".*\"]\n    max_steps: 4\n");
    std::vector<std::string> o = {"run.name=" + name, "run.output_dir=" + dir.str("runs"), "run.threads=2",
                                  "data.train=" + d + "/train.jsonl", "data.val=", "data.image_root=" + d,
                                  "data.tokenizer=" + d + "/tokenizer.json", "data.batch_size=4", "optim.warmup_steps=0",
                                  "optim.lr=1e-3", "checkpoint.every_steps=1", "model.llm.num_layers=2",
                                  "validation.benchmark=", "log.tensorboard=false"};
    o.insert(o.end(), extra.begin(), extra.end());
    return recipe::load_run_config(yaml, o);
  }
};

}  // namespace

TEST_CASE("dpo: step-0 loss is log 2, the cache serves reruns and resumes, stale caches are recomputed or refused") {
  DemoData data;
  auto full = run(data.config("dpo", "dpo"));
  REQUIRE(full.losses.size() == 4);
  CHECK(full.ref_passes == 1);
  // At step 0 the policy is the reference: every pair's term is -log sigmoid(0) = log 2.
  CHECK(std::abs(full.losses[0] - std::log(2.0)) < 1e-5);
  CHECK(std::abs(full.losses[3] - std::log(2.0)) > 1e-3);  // and it trains
  {
    std::ifstream in(data.dir.str("runs/dpo/metrics.jsonl"));
    std::string first;
    std::getline(in, first);
    auto j = nlohmann::json::parse(first);
    CHECK(std::abs(j["rewards/margins"].get<double>()) < 1e-5);
    CHECK(std::abs(j["rewards/chosen"].get<double>()) < 1e-5);
  }
  const std::string cache = data.dir.str("runs/dpo/ref_logps/po.safetensors");
  REQUIRE(std::filesystem::exists(cache));
  auto cached = recipe::load_ref_table(cache);
  REQUIRE(cached.has_value());
  CHECK(cached->logps.size(0) == 24);
  CHECK(cached->key.parts.count("annotations"));
  CHECK(cached->key.parts.count("model"));

  // A fresh rerun of the same run: the cache serves, the losses are bitwise the same.
  auto again = run(data.config("dpo", "dpo"));
  CHECK(again.ref_passes == 0);
  REQUIRE(again.losses.size() == full.losses.size());
  for (size_t i = 0; i < full.losses.size(); ++i) CHECK(again.losses[i] == full.losses[i]);

  // Stop after 2 steps, resume: the cache is used (no second pass), losses bitwise equal the full run.
  auto first = run(data.config("dpo-r", "dpo"), "", 2);
  CHECK(first.interrupted);
  CHECK(first.ref_passes == 1);
  auto second = run(data.config("dpo-r", "dpo"), "latest");
  CHECK(second.ref_passes == 0);
  test::check_resumed_losses(first, second, full);

  // Stale caches. Other annotations (one sample fewer, the rest the same) at a stage start: recomputed.
  const std::string d = data.dir.str("data");
  {
    std::ifstream in(d + "/train.jsonl");
    std::ofstream out(d + "/train-23.jsonl");
    std::string line;
    for (int i = 0; i < 23 && std::getline(in, line); ++i) out << line << "\n";
  }
  auto other = run(data.config("dpo", "dpo", {"data.train=" + d + "/train-23.jsonl"}));
  CHECK(other.ref_passes == 1);
  auto rekeyed = recipe::load_ref_table(cache);
  CHECK(rekeyed->key.differences(cached->key) == "annotations, samples");
  // Other starting weights (another seed) at a stage start: recomputed too.
  auto seeded = run(data.config("dpo", "dpo", {"run.seed=99"}));
  CHECK(seeded.ref_passes == 1);
  CHECK(recipe::load_ref_table(cache)->key.differences(cached->key) == "model");

  // Resuming mid-stage with a cache that no longer matches: an error (the starting weights are gone).
  auto part = run(data.config("dpo-s", "dpo"), "", 2);
  REQUIRE(part.interrupted);
  CHECK_THROWS_WITH(run(data.config("dpo-s", "dpo", {"data.train=" + d + "/train-23.jsonl"}), "latest"),
                    Contains("is stale (it differs in: annotations, samples)"));
  std::filesystem::remove(data.dir.str("runs/dpo-s/ref_logps/po.safetensors"));
  CHECK_THROWS_WITH(run(data.config("dpo-s", "dpo"), "latest"), Contains("is missing"));
  // ... unless `reference:` names a checkpoint holding those weights: recomputed from it.
  auto ref_dir = data.dir.str("runs/dpo-s/po-reference");
  {
    // The stage's starting weights are the seeded init of the run: rebuild them as an HF checkpoint.
    auto c = data.config("dpo-init", "dpo");
    set_threads(2);
    seed_everything(static_cast<uint64_t>(c.run.seed));
    PhantomModel m(c.model);
    init_weights(*m);
    save_phantom(*m, ref_dir);
  }
  auto resumed = run(data.config("dpo-s", "dpo", {"stages.0.reference=" + ref_dir}), "latest");
  CHECK(resumed.ref_passes == 1);
  REQUIRE(resumed.losses.size() == 2);
  CHECK(resumed.losses[0] == full.losses[2]);
  CHECK(resumed.losses[1] == full.losses[3]);
}

TEST_CASE("ipo: step-0 loss is 1/(4 beta^2)") {
  DemoData data;
  auto r = run(data.config("ipo", "ipo"));
  REQUIRE(r.losses.size() == 4);
  CHECK(r.ref_passes == 1);
  const double beta = 2.0;
  CHECK(std::abs(r.losses[0] - 1.0 / (4 * beta * beta)) < 1e-5);
}

TEST_CASE("precision: bf16 autocast on CPU is within 2% of fp32 with fp32 master weights, fp32 is unchanged") {
  torch::manual_seed(5);
  PhantomModel model(test::tiny_vlm_config());
  init_weights(*model, 0.2);
  const auto samples = make_samples(6, model->tokens_per_tile());
  std::vector<at::Tensor> px;
  for (size_t i = 0; i < samples.size(); ++i) px.push_back(torch::randn({1, 3, 28, 28}));
  auto b = batch_of(samples, px, {0, 1, 2, 3, 4, 5}, true);
  recipe::LossConfig lc{recipe::LossKind::po, 2.0, 0.5, 1.0};
  const recipe::StepCounts counts{b.num_sft_tokens, b.num_questions};
  const c10::Device cpu(c10::kCPU);
  auto step = [&](const AutocastState& ac) {
    model->zero_grad();
    recipe::LossOut out;
    {
      AutocastScope scope(ac);
      out = recipe::batch_loss(*model, b, lc, counts);
    }
    out.loss.backward();
    return std::make_pair(out.loss.item<double>(), grads_of(*model));
  };
  auto [plain, g_plain] = step(AutocastState{});
  auto [fp32, g_fp32] = step(AutocastState::for_compute(pick_compute_dtype("auto", cpu), cpu));
  CHECK_FALSE(AutocastState::for_compute(pick_compute_dtype("fp32", cpu), cpu).enabled());
  CHECK(fp32 == plain);  // auto on CPU = fp32: bitwise the same step
  REQUIRE(!g_plain.empty());
  REQUIRE(g_plain.size() == g_fp32.size());
  for (auto& [k, g] : g_plain) CHECK(torch::equal(g, g_fp32.at(k)));

  const auto bf16 = AutocastState::for_compute(pick_compute_dtype("bf16", cpu), cpu);
  REQUIRE(bf16.cpu);
  auto [low, g_low] = step(bf16);
  INFO("fp32 " << plain << " bf16 " << low);
  CHECK(low != plain);                                   // autocast really ran in bf16
  CHECK(std::abs(low - plain) / std::abs(plain) < 0.02);  // stated tolerance: 2% of the loss
  int64_t with_grad = 0;
  for (auto& p : model->parameters()) {
    CHECK(p.scalar_type() == torch::kFloat);  // master weights stay fp32
    if (!p.grad().defined()) continue;
    CHECK(p.grad().scalar_type() == torch::kFloat);
    ++with_grad;
  }
  CHECK(with_grad == static_cast<int64_t>(g_low.size()));
  CHECK(with_grad > 0);
  {
    AutocastScope scope(bf16);
    CHECK(torch::nn::functional::linear(torch::randn({2, 4}), torch::randn({3, 4})).scalar_type() == torch::kBFloat16);
  }
  CHECK_FALSE(AutocastState::current().enabled());  // the scope restored the previous state

  // Activation checkpointing recomputes in the forward's precision: the same gradients under bf16.
  model->language_model->activation_checkpointing = true;
  model->train();
  auto [low_ckpt, g_low_ckpt] = step(bf16);
  model->language_model->activation_checkpointing = false;
  CHECK(std::abs(low_ckpt - low) < 1e-6);
  double worst = 0;
  for (auto& [k, g] : g_low) worst = std::max(worst, (g - g_low_ckpt.at(k)).abs().max().item<double>());
  CHECK(worst < 1e-6);
}

TEST_CASE("precision: run.precision=bf16 trains within 2% of fp32 on CPU, fp32 and auto are bitwise equal") {
  DemoData data;
  auto f32 = run(data.config("p32", "po", {"run.precision=fp32"}));
  auto aut = run(data.config("pauto", "po", {"run.precision=auto"}));
  auto b16 = run(data.config("pbf16", "po", {"run.precision=bf16"}));
  REQUIRE(f32.losses.size() == 4);
  REQUIRE(b16.losses.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    INFO("step " << i << " fp32 " << f32.losses[i] << " bf16 " << b16.losses[i]);
    CHECK(aut.losses[i] == f32.losses[i]);
    CHECK(std::abs(b16.losses[i] - f32.losses[i]) / f32.losses[i] < 0.02);
  }
  CHECK(b16.losses[0] != f32.losses[0]);
}
