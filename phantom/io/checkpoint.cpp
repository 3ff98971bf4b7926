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

// Layer counts of the checkpoint against the config's: a config.json that leaves num_hidden_layers out gets the
// class default (InternVisionConfig 48, InternVLVisionConfig 24, Qwen2Config 32), which loading would only report
// as some hundred "missing" tensors. Said here with the file and key.
static void check_layer_counts(torch::nn::Module& model, const StateDict& sd, const std::string& dir) {
  // "<prefix>layers.<i>." -> the largest i + 1, per prefix
  auto count = [](const std::vector<std::string>& names) {
    std::map<std::string, int64_t> n;
    for (const auto& name : names) {
      const auto p = name.find("layers.");
      if (p == std::string::npos) continue;
      const auto dot = name.find('.', p + 7);
      const std::string idx = name.substr(p + 7, dot == std::string::npos ? std::string::npos : dot - p - 7);
      if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos || idx.size() > 6) continue;
      auto& v = n[name.substr(0, p)];
      v = std::max(v, static_cast<int64_t>(std::stoll(idx)) + 1);
    }
    return n;
  };
  std::vector<std::string> ours, theirs;
  for (const auto& p : model.named_parameters()) ours.push_back(p.key());
  for (const auto& [k, v] : sd) theirs.push_back(k);
  const auto want = count(ours), have = count(theirs);
  for (const auto& [prefix, n] : want) {
    auto h = have.find(prefix);
    if (h == have.end() || h->second == n) continue;
    const bool vision = prefix.find("vision") != std::string::npos;
    throw std::runtime_error((fs::path(dir) / "config.json").string() + ": " +
                             (vision ? "vision_config" : "the LLM config") + " num_hidden_layers is " +
                             std::to_string(n) + " (where the key is absent, that is the class default), but the checkpoint holds " +
                             std::to_string(h->second) + " layers (" + prefix + "layers.*)");
  }
}

PhantomModel load_phantom(const std::string& dir, ModelConfig cfg, LoadReport* report) {
  const auto info = read_hf_config(dir, cfg);
  if (!info.has_vision && !cfg.vision_path.empty()) read_vision_dir_config(cfg.vision_path, cfg.vision);
  PhantomModel model(cfg);
  auto tensors = read_checkpoint_tensors(dir);
  LoadReport r;
  if (info.has_vision) {
    const StateDict ours = llm_from_hf(vlm_to_ours(tensors, info.layout), cfg.llm, info.llm_prefix);
    check_layer_counts(*model, ours, dir);
    r = load_state_dict(*model, ours, cfg.strict_load);
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
  // NaN/Inf weights would only give NaN logits ("!!!!" answers, skipped steps): refused here, with the tensor.
  for (const auto& p : model->named_parameters())
    if (!torch::isfinite(p.value()).all().item<bool>())
      throw std::runtime_error(dir + ": parameter " + p.key() + " holds NaN or Inf values");
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
