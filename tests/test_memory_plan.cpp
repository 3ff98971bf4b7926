// The memory planner (trainers/recipe/memory_plan.h): its tensor list is the module's (names and shapes, for each
// family, Phantom mode and ViT variant), its byte counts by role follow from that list, and its total for one
// real training step at small widths is within a stated tolerance of the caching CPU allocator's measured peak.
#include <map>

#include "phantom/model/cpu_allocator.h"
#include "phantom/model/model.h"
#include "tests/tiny.h"
#include "trainers/recipe/memory_measure.h"
#include "trainers/recipe/memory_plan.h"

using namespace phantom;

namespace {

void check_same_tensors(const ModelConfig& c) {
  PhantomModel m(c);
  std::vector<std::pair<std::string, std::vector<int64_t>>> real, planned;
  for (auto& p : m->named_parameters()) real.emplace_back(p.key(), p.value().sizes().vec());
  int64_t real_count = 0, planned_count = 0;
  for (auto& p : m->parameters()) real_count += p.numel();
  for (auto& t : recipe::model_tensors(c)) planned.emplace_back(t.name, t.shape), planned_count += t.numel();
  std::map<std::string, std::vector<int64_t>> a(real.begin(), real.end()), b(planned.begin(), planned.end());
  for (auto& [name, shape] : a) {
    INFO(name);
    REQUIRE(b.count(name) == 1);
    CHECK(b[name] == shape);
  }
  for (auto& [name, shape] : b) {
    INFO(name);
    CHECK(a.count(name) == 1);
  }
  CHECK(real.size() == planned.size());
  CHECK(planned_count == real_count);
}

}  // namespace

TEST_CASE("memory plan: the planned tensors are the module's, for every family, Phantom mode and ViT variant") {
  auto c = test::tiny_vlm_config();
  check_same_tensors(c);  // qwen2: tied head, q/k/v bias, gate
  c.llm.family = "internlm2", c.llm.tie_word_embeddings = false, c.phantom = "sum";
  check_same_tensors(c);  // bias on wqkv and wo, untied head
  c.llm.family = "phi3", c.llm.attention_bias = false, c.phantom = "off";
  c.vision.norm_type = "rms_norm", c.vision.qk_normalization = true, c.vision.qkv_bias = false;
  check_same_tensors(c);
  c.downsample_ratio = 0.25, c.vision.image_size = 56;
  check_same_tensors(c);
}

TEST_CASE("memory plan: bytes by role follow the stage (int8 base, bf16 frozen, LoRA, ZeRO)") {
  recipe::PlanInputs in;
  in.model = test::tiny_vlm_config();
  in.stage.trainable = {R"(^vision_proj\.)", "_phantom"};
  in.frozen_bytes = 4;
  in.bf16 = false;
  auto fp32 = recipe::plan_memory(in);
  int64_t all = 0;
  for (auto& t : recipe::model_tensors(in.model)) all += t.numel();
  CHECK(fp32.n_params == all);
  CHECK(fp32.weights() == 4 * all);            // everything fp32
  CHECK(fp32.adamw == 8 * fp32.n_trainable);   // two fp32 moments
  in.ranks = 4, in.zero_stage = 2;
  auto z2 = recipe::plan_memory(in);
  CHECK(z2.adamw == 8 * fp32.n_trainable / 4);
  CHECK(z2.gradients == 4 * fp32.n_trainable / 4);
  in.ranks = 1, in.zero_stage = 0;
  in.frozen_bytes = 2, in.stage.base_int8 = true;
  auto int8 = recipe::plan_memory(in);
  CHECK(int8.weights() < fp32.weights());
  CHECK(int8.frozen_int8 > 0);
  CHECK(int8.trainable_fp32 == fp32.trainable_fp32);
  in.stage.lora.rank = 4;
  in.stage.lora.targets = {R"(^language_model\.model\..*\.(qkv_proj|o_proj|gate_up_proj|down_proj)$)"};
  auto lora = recipe::plan_memory(in);
  // Per layer: rank x (in + out) of each adapted Linear.
  const auto& l = in.model.llm;
  const int64_t D = l.head_dim(), q = (l.num_heads + 2 * l.num_kv_heads) * D;
  const int64_t per_layer = 4 * ((l.hidden_size + q) + (l.num_heads * D + l.hidden_size) +
                                 (l.hidden_size + 2 * l.intermediate_size) + (l.intermediate_size + l.hidden_size));
  CHECK(lora.n_lora == l.num_layers * per_layer);
  CHECK(lora.lora_fp32 == 4 * lora.n_lora);
  // Activation checkpointing keeps less of the decoder.
  CHECK(lora.decoder_act_ckpt < lora.decoder_act_full);
}

// Widths where the step's tensors are >= 1 MiB (what the allocator accounts): decoder 256 x 1024, 2 layers, vocab
// 8192, ViT 128 wide, one 56-px tile; 1024-token rows. The tolerances: docs/scale.md's calibration table.
TEST_CASE("memory plan: predicted peak of one real training step: within 15 % of the measured peak, checkpointed or not") {
  use_caching_cpu_allocator();
  recipe::RunConfig cfg;
  auto& mc = cfg.model;
  mc.vision.image_size = 56, mc.vision.patch_size = 7, mc.vision.hidden_size = 128, mc.vision.num_layers = 2;
  mc.vision.num_heads = 4, mc.vision.intermediate_size = 512;
  mc.llm.hidden_size = 256, mc.llm.intermediate_size = 1024, mc.llm.num_layers = 2, mc.llm.num_heads = 4;
  mc.llm.num_kv_heads = 2, mc.llm.vocab_size = 8192, mc.llm.max_position_embeddings = 4096;
  cfg.run.precision = "fp32";
  cfg.data.max_length = 1024, cfg.data.max_tiles = 1, cfg.data.batch_size = 1;
  SECTION("step 1: projector + Phantom trained, PO") {
    recipe::StageConfig s;
    s.name = "step1", s.loss = recipe::LossKind::po, s.trainable = {R"(^vision_proj\.)", "_phantom"};
    cfg.stages = {s};
  }
  SECTION("all trained, SFT") {
    recipe::StageConfig s;
    s.name = "full", s.loss = recipe::LossKind::sft, s.trainable = {".*"};
    cfg.stages = {s};
  }
  for (bool ckpt : {false, true}) {
    cfg.activation_checkpointing = cfg.vision_checkpointing = ckpt;
    const auto r = recipe::measure_step(cfg, mc, 0);
    const double ratio = static_cast<double>(r.plan.total()) / static_cast<double>(r.peak_bytes);
    INFO("stage " << cfg.stages[0].name << " checkpointing " << ckpt << ": plan " << r.plan.total() << " measured "
                  << r.peak_bytes << " ratio " << ratio);
    // Measured (docs/scale.md): 0.87-0.97 without checkpointing, 0.89-1.03 with it. At these small widths the
    // plan is low by the per-token tensors it does not count (about 1,400 elements a token per decoder layer: RoPE
    // tables, copies of the shared prefix's k/v, small per-head tensors); at the 0.5B widths it is within 4 %.
    CHECK(ratio > 0.85);
    CHECK(ratio < (ckpt ? 1.05 : 1.15));
  }
}

// What alloc_peak_gb and `plan --measure` count: blocks under 1 MiB only while asked (reset_cpu_peak(true), or
// PHANTOM_CPU_COUNT_SMALL=1 for a whole run), every large block always.
TEST_CASE("cpu allocator: blocks under 1 MiB are counted only while asked, large ones always") {
  use_caching_cpu_allocator();
  reset_cpu_peak(false);
  const auto before = cpu_cache_stats().live_bytes;
  auto small = torch::empty({1000}, torch::kFloat32);  // 4,000 bytes
  CHECK(cpu_cache_stats().live_bytes == before);
  auto large = torch::empty({1 << 20}, torch::kFloat32);  // 4 MiB
  CHECK(cpu_cache_stats().live_bytes == before + (size_t{4} << 20));
  reset_cpu_peak(true);
  auto counted = torch::empty({1000}, torch::kFloat32);
  CHECK(cpu_cache_stats().live_bytes == before + (size_t{4} << 20) + 4000);
  counted = torch::Tensor();
  large = torch::Tensor();
  CHECK(cpu_cache_stats().live_bytes == before);
  CHECK(cpu_cache_stats().peak_live_bytes >= before + (size_t{4} << 20) + 4000);
  reset_cpu_peak(false);
}
