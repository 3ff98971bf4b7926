#include "phantom/io/checkpoint.h"

#include <filesystem>
#include <map>

#include "phantom/io/hf_config.h"
#include "phantom/io/safetensors.h"
#include "phantom/util/atomic_file.h"

namespace phantom {
namespace fs = std::filesystem;

namespace {

void log_report(const std::string& dir, const LoadReport& r) {
  if (!r.created.empty()) {
    // Grouped by module so the list stays short (e.g. vision_proj, the Phantom tensors of every layer).
    std::map<std::string, int> groups;
    for (auto& n : r.created) {
      std::string g = n.substr(0, n.find('.'));
      if (auto p = n.find("_phantom"); p != std::string::npos) {
        const size_t b = n.rfind('.', p) + 1, e = n.find('.', p);
        g = "*." + n.substr(b, e - b);
      }
      ++groups[g];
    }
    std::string list;
    for (auto& [g, k] : groups) list += (list.empty() ? "" : ", ") + g + " (" + std::to_string(k) + ")";
    log::info("{}: created {} tensors the checkpoint lacks (initialised as the paper's modules): {}", dir,
              r.created.size(), list);
  }
  if (!r.unexpected.empty())
    log::warn("{}: {} checkpoint tensors unused by this model: {}{}", dir, r.unexpected.size(), r.unexpected.front(),
              r.unexpected.size() > 1 ? " ..." : "");
}

void write_config(const std::string& dir, const nlohmann::json& j) {
  util::write_file_atomic((fs::path(dir) / "config.json").string(), j.dump(2) + "\n");
}

}  // namespace

StateDict read_checkpoint_tensors(const std::string& path) {
  st::Checkpoint ck(path);
  StateDict out;
  for (auto& n : ck.names()) out[n] = ck.get(n);  // views keep their file mapped
  return out;
}

void write_checkpoint_tensors(const std::string& path, const StateDict& tensors) {
  st::save(path, st::Named(tensors.begin(), tensors.end()));
}

void write_checkpoint_shards(const std::string& dir, const StateDict& tensors, int64_t max_shard_bytes) {
  const uint64_t limit = max_shard_bytes > 0 ? static_cast<uint64_t>(max_shard_bytes) : UINT64_MAX;
  st::save_sharded(dir, st::Named(tensors.begin(), tensors.end()), limit);
}

DecoderLM load_llm(const std::string& dir, PhantomMode mode, double eta, bool strict, LoadReport* report) {
  ModelConfig mc;
  const auto info = read_hf_config(dir, mc);
  if (info.has_vision)
    throw std::runtime_error(dir + " is a vision-language checkpoint (config.json has llm_config); load it as a Phantom model");
  DecoderLM lm(mc.llm, mode, eta);
  auto sd = llm_from_hf(read_checkpoint_tensors(dir), mc.llm, "");
  auto r = load_state_dict(*lm, sd, strict);
  log_report(dir, r);
  if (report) *report = r;
  return lm;
}

PhantomModel load_phantom(const std::string& dir, ModelConfig cfg, LoadReport* report) {
  const auto info = read_hf_config(dir, cfg);
  if (!info.has_vision && !cfg.vision_path.empty()) read_vision_dir_config(cfg.vision_path, cfg.vision);
  PhantomModel model(cfg);
  auto tensors = read_checkpoint_tensors(dir);
  LoadReport r;
  if (info.has_vision) {
    r = load_state_dict(*model, llm_from_hf(vlm_to_ours(tensors, info.layout), cfg.llm, info.llm_prefix), cfg.strict_load);
  } else {
    // A bare LLM: the decoder comes from the checkpoint, the ViT from model.vision_path or from scratch, the
    // projector from scratch.
    if (cfg.strict_load)
      throw std::runtime_error(dir + " holds a bare LLM: strict loading into a vision-language model is impossible");
    init_weights(*model);
    r = load_state_dict(*model->language_model, llm_from_hf(tensors, cfg.llm, ""), false);
    bool vit_loaded = false;
    if (!cfg.vision_path.empty()) {
      auto vit = vision_from_hf(read_checkpoint_tensors(cfg.vision_path));
      StateDict ours;  // vision_model.X -> X
      for (auto& [n, t] : vit) ours[n.substr(13)] = t;
      try {
        load_state_dict(*model->vision_model, ours, /*strict=*/true);
      } catch (const std::exception& e) {
        throw std::runtime_error(cfg.vision_path + " (model.vision_path): " + e.what());
      }
      vit_loaded = true;
      log::info("{}: InternViT loaded ({} tensors)", cfg.vision_path, ours.size());
    }
    for (auto& p : model->named_parameters()) {
      const bool llm = p.key().rfind("language_model.", 0) == 0, vit = p.key().rfind("vision_model.", 0) == 0;
      if (!llm && !(vit && vit_loaded)) r.created.push_back(p.key());
    }
  }
  log_report(dir, r);
  if (report) *report = r;
  return model;
}

// The HF layout has no place for adapters or int8 storage: an export must see a plain model.
static void require_plain(torch::nn::Module& m) {
  auto a = lora_linears(m);
  if (!a.empty())
    throw std::runtime_error("cannot export a model with LoRA adapters (" + a.front() +
                             " ...) to HF format: merge them first (merge_lora / phantom convert merge-lora)");
  for (auto& [name, l] : named_linears(m))
    if (l->is_int8()) throw std::runtime_error("cannot export int8 weights (" + name + ") to HF format: merge_lora first");
}

void save_llm(DecoderLMImpl& lm, const std::string& dir, int64_t max_shard_bytes) {
  require_plain(lm);
  fs::create_directories(dir);
  auto sd = llm_to_hf(module_state_dict(lm), lm.cfg, "");
  write_checkpoint_shards(dir, sd, max_shard_bytes);
  write_config(dir, llm_config_json(lm.cfg));
}

void save_phantom(PhantomModelImpl& model, const std::string& dir, int64_t max_shard_bytes) {
  require_plain(model);
  fs::create_directories(dir);
  auto sd = llm_to_hf(module_state_dict(model), model.cfg.llm, "language_model.");
  write_checkpoint_shards(dir, sd, max_shard_bytes);
  ModelConfig c = model.cfg;
  c.image_token_index = model.image_token_index;
  write_config(dir, phantom_config_json(c));
}

}  // namespace phantom
