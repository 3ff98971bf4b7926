// LoRA and int8 frozen weights (phantom/model/lora.h, trainers/recipe/lora_stage.h): the Linear layer is torch's, a fresh adapter
// changes nothing, only adapters (and the stage's patterns) train, merging equals the adapter forward, int8's logit
// error, bad targets, `merge-lora` output checked by the Python reference, exact resume of a LoRA stage.
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>

#include "phantom/io/checkpoint.h"
#include "phantom/model/lora.h"
#include "phantom/model/model.h"
#include "tests/helpers.h"
#include "tests/tiny.h"
#include "trainers/recipe/lora_stage.h"
#include "trainers/recipe/run_config.h"
#include "trainers/recipe/train_state.h"
#include "trainers/recipe/trainer.h"

using namespace phantom;
using phantom::test::run;
using phantom::test::TempDir;

namespace {

// Every Linear of ViT and LLM, as the paper's step 2 (the projector and the Phantom tensors train fully).
const std::vector<std::string> kAllLinears = {R"(^vision_model\..*\.(qkv|proj|fc1|fc2)$)",
                                              R"(^language_model\.model\..*\.(qkv_proj|o_proj|gate_up_proj|down_proj)$)"};

// Two rows, each [sos, image tokens of one tile, 7 text tokens]; the second right-padded by 2.
ModelInputs image_batch(const PhantomModelImpl& m) {
  const int64_t T = m.tokens_per_tile(), L = 1 + T + 7;
  auto ids = torch::randint(10, 64, {2, L}, torch::kInt64);
  ids.narrow(1, 1, T).fill_(m.image_token_index);
  auto mask = torch::ones({2, L}, torch::kInt64);
  mask[1].narrow(0, L - 2, 2).zero_();
  ModelInputs in;
  in.input_ids = ids * mask;
  in.attention_mask = mask;
  in.pixel_values = torch::randn({2, 3, 28, 28});
  return in;
}

at::Tensor logits_of(PhantomModelImpl& m, const ModelInputs& in) {
  torch::NoGradGuard ng;
  return m.forward(in);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Adapters that matter: B random instead of zero.
void randomise_adapters(torch::nn::Module& m, double std) {
  torch::NoGradGuard ng;
  for (auto& [name, l] : named_linears(m))
    if (l->has_lora()) l->lora_B->weight.normal_(0, std);
}

recipe::StageConfig lora_stage(std::vector<std::string> trainable, int64_t rank = 4) {
  recipe::StageConfig s;
  s.name = "step2";
  s.trainable = std::move(trainable);
  s.lora.rank = rank, s.lora.alpha = 8, s.lora.targets = kAllLinears;
  return s;
}

}  // namespace

TEST_CASE("lora: phantom Linear has the names, draws and outputs of torch::nn::Linear") {
  for (bool bias : {true, false}) {
    torch::manual_seed(3);
    torch::nn::Linear ref(torch::nn::LinearOptions(12, 5).bias(bias));
    torch::manual_seed(3);
    Linear ours(12, 5, bias);
    CHECK(torch::equal(ref->weight, ours->weight));
    CHECK(ours->named_parameters().size() == (bias ? 2u : 1u));
    if (bias) CHECK(torch::equal(ref->bias, ours->bias));
    auto x = torch::randn({3, 12});
    CHECK(torch::equal(ref(x), ours(x)));
  }
}

TEST_CASE("lora: a fresh adapter leaves the logits identical, gradients reach only adapters and trainable patterns") {
  torch::manual_seed(0);
  PhantomModel model(test::tiny_vlm_config());
  init_weights(*model, 0.2);
  auto in = image_batch(*model);
  const auto before = logits_of(*model, in);
  const auto names_before = module_state_dict(*model);

  auto stage = lora_stage({"^vision_proj\\.", "_phantom"});
  recipe::attach_stage_lora(*model, stage);
  const auto adapted = lora_linears(*model);
  CHECK(adapted.size() == 4 + 2 * 4);  // ViT: qkv, proj, fc1, fc2; LLM: 4 per layer x 2 layers
  CHECK(torch::equal(logits_of(*model, in), before));  // bitwise: B = 0

  // Trainable: every adapter, the projector and the Phantom tensors; no base weight of an adapted Linear.
  const recipe::Trainable t = recipe::select_stage_trainable(*model, stage);
  int64_t adapters = 0, expected = 0;
  for (auto& n : t.names) {
    INFO(n);
    const bool lora = n.find(".lora_") != std::string::npos;
    adapters += lora;
    CHECK((lora || n.rfind("vision_proj.", 0) == 0 || n.find("_phantom") != std::string::npos));
  }
  CHECK(adapters == 2 * static_cast<int64_t>(adapted.size()));
  for (auto& p : model->named_parameters())
    if (p.value().requires_grad()) expected += p.value().numel();
  CHECK(t.count == expected);
  // A pattern naming an adapted base (here everything) does not unfreeze it.
  const recipe::Trainable all = recipe::select_stage_trainable(*model, lora_stage({".*"}));
  REQUIRE(!all.names.empty());  // an empty selection would pass the loop below
  for (auto& n : all.names) CHECK(n != "language_model.model.layers.0.self_attn.qkv_proj.weight");

  // Gradients: exactly the trainable tensors get one.
  recipe::select_stage_trainable(*model, stage);
  randomise_adapters(*model, 0.1);  // so that lora_A gets a non-zero gradient too
  model->zero_grad();
  model->forward(in).pow(2).mean().backward();
  std::set<std::string> trainable(t.names.begin(), t.names.end());
  for (auto& p : model->named_parameters()) {
    INFO(p.key());
    const bool has = p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0;
    CHECK(has == (trainable.count(p.key()) > 0));
  }

  // Merged: the model has exactly the tensors (names and shapes) it had before, no adapter left.
  merge_lora(*model);
  const auto names_after = module_state_dict(*model);
  REQUIRE(names_after.size() == names_before.size());
  for (auto& [k, v] : names_before) {
    INFO(k);
    REQUIRE(names_after.count(k));
    CHECK(names_after.at(k).sizes() == v.sizes());
  }
}

TEST_CASE("lora: merging the adapters into the weights gives the unmerged forward (1e-5)") {
  torch::manual_seed(1);
  PhantomModel model(test::tiny_vlm_config());
  init_weights(*model, 0.2);
  auto in = image_batch(*model);
  LoraOptions o;
  o.rank = 4, o.alpha = 8, o.targets = kAllLinears;
  o.targets.push_back(R"(^vision_proj\.)");  // the projector's two Linears too
  attach_lora(*model, o);
  randomise_adapters(*model, 0.3);
  const auto base = [&] {
    PhantomModel plain(test::tiny_vlm_config());
    auto sd = module_state_dict(*model);
    StateDict core;
    for (auto& [k, v] : sd)
      if (k.find(".lora_") == std::string::npos) core[k] = v;
    load_state_dict(*plain, core, true);
    return logits_of(*plain, in);
  }();
  const auto unmerged = logits_of(*model, in);
  CHECK(max_diff(unmerged, base) > 1e-2);  // the adapters really change the model
  CHECK(merge_lora(*model) == 14);
  CHECK(lora_linears(*model).empty());
  const auto merged = logits_of(*model, in);
  std::printf("lora merge: max |merged - unmerged| logit difference %.3e\n", max_diff(merged, unmerged));
  CHECK(max_diff(merged, unmerged) < 1e-5);
  // A second attach on the merged model works (the next LoRA stage); attaching twice does not.
  attach_lora(*model, o);
  CHECK_THROWS_WITH(attach_lora(*model, o), Catch::Contains("already has a LoRA adapter"));
}

TEST_CASE("lora: int8 frozen weights: logit error vs fp32 and bf16 weights, memory, adapters and merge on top") {
  torch::manual_seed(2);
  PhantomModel model(test::tiny_vlm_config());
  init_weights(*model, 0.2);
  auto in = image_batch(*model);
  const auto ref = logits_of(*model, in);
  const auto sd = module_state_dict(*model);

  // bf16 storage of the same weights, computed in fp32: the error the paper's bf16 would already have.
  PhantomModel bf(test::tiny_vlm_config());
  load_state_dict(*bf, sd, true);
  int64_t float_bytes = 0;
  for (auto& [name, l] : named_linears(*bf)) {
    torch::NoGradGuard ng;
    for (auto& pat : kAllLinears)
      if (std::regex_search(name, std::regex(pat))) {
        float_bytes += l->weight.numel() * 4;
        l->weight.copy_(l->weight.to(torch::kBFloat16).to(torch::kFloat));
      }
  }
  const double err_bf16 = max_diff(logits_of(*bf, in), ref);

  LoraOptions o;
  o.rank = 4, o.alpha = 8, o.targets = kAllLinears, o.base_int8 = true;
  attach_lora(*model, o);
  int64_t int8_bytes = 0;
  for (auto& [name, l] : named_linears(*model))
    if (l->is_int8()) {
      CHECK_FALSE(l->weight.defined());
      int8_bytes += l->int8->weight.numel() + l->int8->scale.numel() * 4;
    }
  const auto q = logits_of(*model, in);  // fresh adapters: the int8 base alone
  const double err_int8 = max_diff(q, ref);
  const double mean_int8 = (q - ref).abs().mean().item<double>();
  const double mean_bf16 = (logits_of(*bf, in) - ref).abs().mean().item<double>();
  std::printf("int8 frozen weights (tiny VLM, std 0.2): |logit error| max %.3e mean %.3e; bf16 weights: max %.3e "
              "mean %.3e (logits up to %.2f); adapted weights %lld bytes fp32 -> %lld bytes int8+scales\n",
              err_int8, mean_int8, err_bf16, mean_bf16, ref.abs().max().item<double>(),
              static_cast<long long>(float_bytes), static_cast<long long>(int8_bytes));
  CHECK(err_int8 > 0);
  CHECK(err_int8 < 0.1);
  CHECK(err_int8 < 4 * err_bf16);  // per-row int8 costs a few times bf16's rounding, not orders of magnitude
  CHECK(int8_bytes * 3 < float_bytes);  // ~1/4 plus the scales

  // A checkpoint of the int8 model reloads into a fresh int8 model bitwise (resume).
  TempDir t;
  write_checkpoint_tensors(t.str("m.safetensors"), module_state_dict(*model));
  PhantomModel again(test::tiny_vlm_config());
  attach_lora(*again, o);
  load_state_dict(*again, read_checkpoint_tensors(t.str("m.safetensors")), true);
  CHECK(torch::equal(logits_of(*again, in), q));
  // model->to(dtype) keeps the int8 values.
  again->to(torch::kDouble);
  auto* qkv_again = again->language_model->layers[0]->as<DecoderLayerImpl>()->self_attn->qkv_proj.get();
  CHECK(qkv_again->int8->weight.scalar_type() == torch::kInt8);
  CHECK(qkv_again->int8->scale.scalar_type() == torch::kFloat);
  merge_lora(*again);
  CHECK(qkv_again->weight.scalar_type() == torch::kDouble);  // merged into the model's dtype

  // Gradients flow through the int8 matmul to the adapters; merging gives the adapter forward.
  randomise_adapters(*model, 0.3);
  model->zero_grad();
  model->forward(in).pow(2).mean().backward();
  auto* qkv = model->language_model->layers[0]->as<DecoderLayerImpl>()->self_attn->qkv_proj.get();
  CHECK(qkv->lora_A->weight.grad().abs().sum().item<double>() > 0);
  auto* fc1 = model->vision_model->layers[0]->as<VisionLayerImpl>()->mlp->fc1.get();
  CHECK(fc1->lora_A->weight.grad().abs().sum().item<double>() > 0);  // through every int8 layer above it
  const auto unmerged = logits_of(*model, in);
  merge_lora(*model);
  CHECK_FALSE(qkv->is_int8());
  CHECK(qkv->weight.scalar_type() == torch::kFloat);
  CHECK(max_diff(logits_of(*model, in), unmerged) < 1e-5);
}

TEST_CASE("lora: bad targets and LoRA config errors are named") {
  torch::manual_seed(0);
  PhantomModel model(test::tiny_vlm_config());
  LoraOptions o;
  o.rank = 4, o.targets = {R"(self_attn\.qkv_proj$)", "nope_proj"};
  CHECK_THROWS_WITH(attach_lora(*model, o), Catch::Contains("lora.targets pattern 'nope_proj' matches no Linear") &&
                                                Catch::Contains("language_model.model.layers."));
  CHECK(lora_linears(*model).empty());  // nothing attached on error
  o.targets = {"("};
  CHECK_THROWS_WITH(attach_lora(*model, o), Catch::Contains("'(' is not a valid regex"));
  // Exporting an unmerged model is refused (the HF layout has no adapters).
  o.targets = {R"(o_proj$)"};
  attach_lora(*model, o);
  TempDir t;
  CHECK_THROWS_WITH(save_phantom(*model, t.str("x")), Catch::Contains("merge them first"));

  const auto demo = test::source_path("configs/demo.yaml");
  CHECK_THROWS_WITH(recipe::load_run_config(demo, {"stages.2.lora.rank=8"}),
                    Catch::Contains("stages.2.lora.targets: empty"));
  CHECK_THROWS_WITH(recipe::load_run_config(demo, {"stages.2.lora.base_int8=true"}),
                    Catch::Contains("stages.2.lora.base_int8: needs lora.rank > 0"));
  CHECK_THROWS_WITH(recipe::load_run_config(demo, {"stages.2.lora.rank=8", "stages.2.lora.targets=[o_proj]",
                                                  "stages.2.lora.dropout=0.1", "activation_checkpointing=true"}),
                    Catch::Contains("stages.2.lora.dropout: must be 0 with activation_checkpointing"));
}

TEST_CASE("lora: merge-lora of a training checkpoint loads in the Python reference with the unmerged logits") {
  for (bool int8 : {false, true}) {
    INFO("int8 base " << int8);
    torch::manual_seed(4);
    TempDir t;
    recipe::RunConfig rc;
    rc.model = test::tiny_vlm_config();
    rc.stages = {lora_stage({"^vision_proj\\.", "_phantom"}, 4)};
    rc.stages[0].lora.base_int8 = int8;
    PhantomModel model(rc.model);
    init_weights(*model, 0.2);
    save_phantom(*model, t.str("base"));  // the base weights in HF names, for the PEFT check
    recipe::attach_stage_lora(*model, rc.stages[0]);
    randomise_adapters(*model, 0.3);
    auto in = image_batch(*model);
    const auto unmerged = logits_of(*model, in);
    // A mid-stage training checkpoint, as the trainer writes it.
    recipe::save_checkpoint(t.str("run"), *model, nullptr, recipe::TrainState{0, 1, 1, 2, false, {}},
                           recipe::resolved_yaml(rc, "test", {}), 2);
    auto ck = recipe::latest_checkpoint(t.str("run"));
    REQUIRE(ck);
    recipe::MergeOptions mo;
    mo.checkpoint = *ck, mo.out = t.str("merged");
    if (!int8) mo.adapter_out = t.str("adapter");
    auto r = recipe::merge_lora_checkpoint(mo);
    CHECK(r.merged == 12);
    CHECK(r.stage == "step2");
    write_checkpoint_tensors(t.str("cpp_logits.safetensors"), {{"ids", in.input_ids},
                                                               {"mask", in.attention_mask},
                                                               {"pixels", in.pixel_values},
                                                               {"logits", unmerged}});
    const std::string cmd = std::string(PHANTOM_PYTHON) + " " + test::source_path("tests/tools/model_reference.py") +
                            " check-merged --out " + t.str() + " > " + t.str("check.log") + " 2>&1";
    const int rc_py = std::system(cmd.c_str());
    std::ifstream log(t.str("check.log"));
    std::string line((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    std::printf("merge-lora (int8 %d) vs Python: %s", int8 ? 1 : 0, line.c_str());
    CHECK(rc_py == 0);
    if (!int8) {  // the PEFT adapter file: base + alpha/r * B @ A in HF names is the merged model
      const std::string peft = std::string(PHANTOM_PYTHON) + " " + test::source_path("tests/tools/model_reference.py") +
                               " check-peft --out " + t.str() + " > " + t.str("peft.log") + " 2>&1";
      const int rc_peft = std::system(peft.c_str());
      std::ifstream plog(t.str("peft.log"));
      std::string pl((std::istreambuf_iterator<char>(plog)), std::istreambuf_iterator<char>());
      std::printf("PEFT adapter vs merged: %s", pl.c_str());
      CHECK(rc_peft == 0);
    }
    // And it loads back in C++ strictly, with the same logits.
    ModelConfig mc = rc.model;
    mc.strict_load = true;
    auto back = load_phantom(t.str("merged"), mc);
    back->image_token_index = 5;
    CHECK(max_diff(logits_of(*back, in), unmerged) < 1e-5);
  }
}

namespace {

struct DemoRun : test::DemoDataDir {
  DemoRun() : DemoDataDir(32) {}
  // warmup (SFT, 2 steps) -> step1 (PO, 2 steps) -> step2 (LoRA r4 on every ViT/LLM Linear + projector + Phantom
  // tensors, int8 bases, 4 steps, checkpoint every 2).
  recipe::RunConfig config(const std::string& name) const {
    const std::string d = dir.str("data");
    return recipe::load_run_config(
        test::source_path("configs/demo.yaml"),
        {"run.name=" + name, "run.output_dir=" + dir.str("runs"), "data.train=" + d + "/train.jsonl",
         "data.val=" + d + "/val.jsonl", "data.image_root=" + d, "data.tokenizer=" + d + "/tokenizer.json",
         "data.batch_size=4", "stages.0.max_steps=2", "stages.1.max_steps=2", "stages.2.max_steps=4",
         "checkpoint.every_steps=2", "model.llm.num_layers=2", "validation.benchmark=",
         "stages.2.trainable=['^vision_proj\\.', '_phantom']", "stages.2.lora.rank=4", "stages.2.lora.alpha=8",
         R"(stages.2.lora.targets=['^vision_model\..*\.(qkv|proj|fc1|fc2)$', '^language_model\.model\..*_proj$'])",
         "stages.2.lora.base_int8=true"});
  }
};

}  // namespace

TEST_CASE("lora: exact resume inside a LoRA stage (bitwise losses), merge-lora of a mid-stage checkpoint gives its logits") {
  DemoRun data;
  auto full = run(data.config("full"), "", 0);
  REQUIRE(full.losses.size() == 8);
  // 5: one step into the LoRA stage (the checkpoint holds adapters and int8 bases); 4: at the boundary before it
  // (the adapters are created after the resume, from the restored generator).
  for (int64_t stop : {5, 4}) {
    INFO("stop after " << stop);
    const std::string name = "resumed" + std::to_string(stop);
    auto first = run(data.config(name), "", stop);
    CHECK(first.interrupted);
    const auto ck = recipe::latest_checkpoint(data.dir.str("runs/" + name));
    REQUIRE(ck);
    auto tensors = read_checkpoint_tensors(*ck + "/model.safetensors");
    const bool mid = stop == 5;
    CHECK(tensors.count("language_model.model.layers.0.self_attn.qkv_proj.lora_A.weight") == (mid ? 1u : 0u));
    CHECK(tensors.count("language_model.model.layers.0.self_attn.qkv_proj.int8.weight") == (mid ? 1u : 0u));
    CHECK(tensors.count("language_model.model.layers.0.self_attn.qkv_proj.weight") == (mid ? 0u : 1u));
    auto second = run(data.config(name), "latest", 0);
    test::check_resumed_losses(first, second, full);
  }
  // The stage-end export is a plain model. merge-lora of the full run's mid-stage checkpoint (global step 6, LoRA
  // step 2) gives the logits of that checkpoint's adapter model.
  const auto exported = read_checkpoint_tensors(data.dir.str("runs/full/step2/model.safetensors"));
  REQUIRE(exported.size() > 10);  // a real model, not an empty file
  for (auto& [k, v] : exported) CHECK(k.find("lora_") == std::string::npos);
  recipe::MergeOptions mo;
  mo.checkpoint = data.dir.str("runs/full/checkpoints/step-000006"), mo.out = data.dir.str("merged6");
  REQUIRE(std::filesystem::exists(mo.checkpoint));
  CHECK(recipe::merge_lora_checkpoint(mo).merged == 16);  // 2 ViT + 2 LLM layers, 4 Linears each
  CHECK(std::filesystem::exists(data.dir.str("merged6/tokenizer.json")));
  auto cfg = recipe::load_run_config(mo.checkpoint + "/config.yaml", {});
  PhantomModel lora_model(cfg.model);
  recipe::attach_stage_lora(*lora_model, cfg.stages[2]);
  load_state_dict(*lora_model, read_checkpoint_tensors(mo.checkpoint + "/model.safetensors"), true);
  ModelConfig mc = cfg.model;
  auto merged = load_phantom(data.dir.str("merged6"), mc);
  REQUIRE(merged->image_token_index >= 0);
  lora_model->image_token_index = merged->image_token_index;
  ModelInputs in;
  in.input_ids = torch::randint(10, 200, {2, 12}, torch::kInt64);
  CHECK(max_diff(logits_of(*merged, in), logits_of(*lora_model, in)) < 1e-4);
}

TEST_CASE("lora: the phantom-{0.5b,1.8b,3.8b,7b}.yaml recipes are the paper's two steps, their targets fit the model") {
  for (const char* size : {"0.5b", "1.8b", "3.8b", "7b"}) {
    INFO(size);
    auto c = recipe::load_run_config(test::source_path(std::string("configs/phantom-") + size + ".yaml"), {});
    REQUIRE(c.stages.size() == 2);
    const auto &s1 = c.stages[0], &s2 = c.stages[1];
    CHECK(s1.loss == recipe::LossKind::po);
    CHECK(s2.loss == recipe::LossKind::sft);
    CHECK(c.optim.lr == 1e-5);
    CHECK(c.optim.min_lr == 1e-6);
    CHECK(s1.lora.rank == 0);
    CHECK(s2.lora.rank == 256);
    CHECK(s2.lora.alpha == 256);
    CHECK_FALSE(c.model.path.empty());
    // On a small model of the same layout: step 1 trains exactly the projector and the Phantom tensors; step 2's
    // targets take every ViT and LLM Linear and none of the projector / Phantom / lm_head ones.
    ModelConfig mc = test::tiny_vlm_config();
    mc.llm.tie_word_embeddings = false;
    torch::manual_seed(0);
    PhantomModel m(mc);
    auto t1 = recipe::select_stage_trainable(*m, s1);
    REQUIRE(!t1.names.empty());
    for (auto& n : t1.names) CHECK((n.rfind("vision_proj.", 0) == 0 || n.find("_phantom") != std::string::npos));
    recipe::StageConfig small = s2;
    small.lora.rank = 2;
    recipe::attach_stage_lora(*m, small);
    const auto adapted = lora_linears(*m);
    CHECK(adapted.size() == 4 + 2 * 4);
    for (auto& n : adapted) CHECK((n.find("phantom") == std::string::npos && n.find("vision_proj") == std::string::npos));
    auto t2 = recipe::select_stage_trainable(*m, small);
    int64_t adapter_numel = 0;
    for (auto& p : m->named_parameters())
      if (p.key().find(".lora_") != std::string::npos) adapter_numel += p.value().numel();
    CHECK(t2.count == t1.count + adapter_numel);  // the step-1 tensors + the adapters, no base weight
  }
}
