#include "trainers/recipe/lora_stage.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "data/tokenizers/tokenizer.h"
#include "phantom/io/checkpoint.h"
#include "phantom/io/hf_config.h"
#include "phantom/util/atomic_file.h"
#include "phantom/util/logf.h"
#include "trainers/recipe/train_state.h"

namespace phantom::recipe {
namespace fs = std::filesystem;

LoraOptions lora_options(const LoraConfig& c) {
  LoraOptions o;
  o.rank = c.rank, o.alpha = c.alpha, o.dropout = c.dropout, o.targets = c.targets, o.base_int8 = c.base_int8;
  return o;
}

void attach_stage_lora(torch::nn::Module& model, const StageConfig& stage) {
  if (stage.lora.rank <= 0) return;
  std::vector<std::string> names;
  try {
    names = attach_lora(model, lora_options(stage.lora));
  } catch (const std::exception& e) {
    throw std::runtime_error("stage " + stage.name + ": " + e.what());
  }
  log::info("stage {}: LoRA rank {} alpha {} on {} Linears{} ({} ...)", stage.name, stage.lora.rank, stage.lora.alpha,
            names.size(), stage.lora.base_int8 ? ", frozen bases stored as int8" : "", names.front());
}

Trainable select_stage_trainable(torch::nn::Module& model, const StageConfig& stage) {
  auto patterns = stage.trainable;
  const bool lora = stage.lora.rank > 0;
  if (lora) patterns.push_back(R"(\.lora_[AB]\.weight$)");
  Trainable t = select_trainable(model, patterns);
  if (!lora) return t;
  std::set<const void*> frozen;
  for (auto& [name, l] : named_linears(model)) {
    (void)name;
    if (!l->has_lora()) continue;
    for (at::Tensor* p : {&l->weight, &l->bias})
      if (p->defined() && p->requires_grad()) frozen.insert(p->unsafeGetTensorImpl()), p->set_requires_grad(false);
  }
  if (frozen.empty()) return t;
  Trainable kept;
  for (size_t i = 0; i < t.params.size(); ++i) {
    if (frozen.count(t.params[i].unsafeGetTensorImpl())) continue;
    kept.names.push_back(t.names[i]), kept.params.push_back(t.params[i]), kept.count += t.params[i].numel();
  }
  log::info("stage {}: {} weight/bias tensors of adapted Linears matched `trainable` and stay frozen (LoRA trains them)",
            stage.name, frozen.size());
  return kept;
}

namespace {

void copy_tokenizer_files(const std::string& tokenizer, const fs::path& out) {
  const fs::path tok(tokenizer);
  fs::copy_file(tok, out / tok.filename(), fs::copy_options::overwrite_existing);
  // The HF companions of a tokenizer file, when they sit next to it.
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "generation_config.json"}) {
    const auto p = tok.parent_path() / f;
    if (fs::exists(p) && p.filename() != tok.filename()) fs::copy_file(p, out / f, fs::copy_options::overwrite_existing);
  }
}

}  // namespace

void write_peft_adapter(PhantomModelImpl& model, const LoraConfig& lora, const std::string& base_model,
                        const std::string& dir) {
  StateDict tensors;
  std::set<std::string> modules;
  for (auto& [name, l] : named_linears(model)) {
    if (!l->has_lora()) continue;
    // The weight conversion applied to B (out x r) gives the HF names and each part's rows.
    StateDict one{{name + ".weight", l->lora_B->weight.detach()}};
    for (auto& [hf_name, rows] : llm_to_hf(one, model.cfg.llm, "language_model.")) {
      const std::string mod = hf_name.substr(0, hf_name.size() - std::string(".weight").size());
      tensors["base_model.model." + mod + ".lora_A.weight"] = l->lora_A->weight.detach().contiguous();
      tensors["base_model.model." + mod + ".lora_B.weight"] = rows.contiguous();
      modules.insert(mod);
    }
  }
  if (tensors.empty()) throw std::runtime_error("the model has no LoRA adapters to write");
  fs::create_directories(dir);
  write_checkpoint_tensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors);
  nlohmann::json j = {{"peft_type", "LORA"},
                      {"r", lora.rank},
                      {"lora_alpha", lora.alpha},
                      {"lora_dropout", lora.dropout},
                      {"bias", "none"},
                      {"fan_in_fan_out", false},
                      {"target_modules", std::vector<std::string>(modules.begin(), modules.end())},
                      {"base_model_name_or_path", base_model},
                      {"inference_mode", true}};
  util::write_file_atomic((fs::path(dir) / "adapter_config.json").string(), j.dump(2) + "\n");
}

MergeResult merge_lora_checkpoint(const MergeOptions& o) {
  const fs::path ck(o.checkpoint);
  if (!fs::exists(ck / "state.json") || !fs::exists(ck / "model.safetensors") || !fs::exists(ck / "config.yaml"))
    throw std::runtime_error(o.checkpoint + " is not a training checkpoint (needs state.json, model.safetensors, config.yaml)");
  RunConfig cfg = load_run_config((ck / "config.yaml").string(), {});
  const TrainState st = read_train_state(ck.string());
  if (st.stage < 0 || st.stage >= static_cast<int64_t>(cfg.stages.size()))
    throw std::runtime_error(o.checkpoint + ": stage " + std::to_string(st.stage) + " is not in its config.yaml");
  const StageConfig& stage = cfg.stages[static_cast<size_t>(st.stage)];

  // The architecture: the run's YAML, or the config.json of the HF checkpoint it started from.
  ModelConfig mc = cfg.model;
  if (!o.base.empty()) mc.path = o.base;
  if (!mc.path.empty()) {
    if (!fs::exists(fs::path(mc.path) / "config.json"))
      throw config::ConfigError("config error: model.path: " + mc.path + " (from " + (ck / "config.yaml").string() +
                                ") has no config.json; pass the HF checkpoint the run started from with --base DIR");
    read_hf_config(mc.path, mc);
  }
  PhantomModel model(mc);
  auto tensors = read_checkpoint_tensors((ck / "model.safetensors").string());
  bool has_adapters = false;
  for (auto& kv : tensors) has_adapters = has_adapters || kv.first.find(".lora_A.") != std::string::npos;
  if (has_adapters) {
    if (stage.lora.rank <= 0)
      throw std::runtime_error(o.checkpoint + " holds LoRA tensors but its stage '" + stage.name + "' has lora.rank 0");
    attach_lora(*model, lora_options(stage.lora));
  }
  // Frozen Linears the stage stored as int8 (stage.base_int8, with or without an adapter) are int8 in the file.
  for (auto& [name, l] : named_linears(*model))
    if (!l->is_int8() && tensors.count(name + ".int8.weight")) l->quantize_int8();
  load_state_dict(*model, tensors, /*strict=*/true);
  if (!o.adapter_out.empty()) {
    if (!has_adapters) throw std::runtime_error(o.checkpoint + " holds no LoRA adapters to write to " + o.adapter_out);
    write_peft_adapter(*model, stage.lora, mc.path, o.adapter_out);
  }
  MergeResult r;
  r.stage = stage.name;
  r.merged = merge_lora(*model);

  const std::string tok_path = o.tokenizer.empty() ? cfg.data.tokenizer : o.tokenizer;
  if (!tok_path.empty()) {
    if (!fs::exists(tok_path))
      throw config::ConfigError("config error: data.tokenizer: file not found: " + tok_path + " (pass --tokenizer FILE)");
    auto tok = data::load_tokenizer(tok_path);
    auto id = tok->token_to_id(mc.image_token);
    if (!id) throw std::runtime_error("the tokenizer " + tok_path + " has no image token '" + mc.image_token + "'");
    model->image_token_index = *id;
  } else if (model->image_token_index < 0) {
    throw std::runtime_error("no tokenizer (data.tokenizer is empty) and no model.image_token_index: pass --tokenizer FILE");
  }
  fs::create_directories(o.out);
  save_phantom(*model, o.out);
  if (!tok_path.empty()) copy_tokenizer_files(tok_path, o.out);
  log::info("{} (stage {}, step {}): {} adapters merged; HF-format model written to {}", o.checkpoint, stage.name,
            st.stage_step, r.merged, o.out);
  return r;
}

}  // namespace phantom::recipe
