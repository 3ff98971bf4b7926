#include "phantom/io/hf_config.h"

#include <filesystem>
#include <fstream>

namespace phantom {
using nlohmann::json;

namespace {

template <class T>
T get(const json& j, const char* key, const T& fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

template <class T>
T require(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) throw std::runtime_error(where + ": missing key '" + key + "'");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw std::runtime_error(where + ": key '" + key + "' has the wrong type: " + it->dump());
  }
}

std::string family_of(const json& j, const std::string& where) {
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
    arch = j["architectures"][0].get<std::string>();
  const std::string type = get<std::string>(j, "model_type", "");
  if (arch.find("Qwen2") != std::string::npos || type == "qwen2") return "qwen2";
  if (arch.find("InternLM2") != std::string::npos || type == "internlm2") return "internlm2";
  if (arch.find("Phi3") != std::string::npos || type == "phi3") return "phi3";
  throw std::runtime_error(where + ": unsupported LLM (architectures '" + arch + "', model_type '" + type +
                           "'); supported: Qwen2, InternLM2, Phi-3");
}

}  // namespace

LlmConfig llm_config_from_json(const json& j, const std::string& where) {
  LlmConfig c;
  c.family = family_of(j, where);
  c.hidden_size = require<int64_t>(j, "hidden_size", where);
  c.intermediate_size = require<int64_t>(j, "intermediate_size", where);
  c.num_layers = require<int64_t>(j, "num_hidden_layers", where);
  c.num_heads = require<int64_t>(j, "num_attention_heads", where);
  c.num_kv_heads = get<int64_t>(j, "num_key_value_heads", c.num_heads);
  c.vocab_size = require<int64_t>(j, "vocab_size", where);
  // Omitted InternLM2/Phi-3 keys take the defaults of the official InternLM2Config / Phi3Config.
  const bool internlm2 = c.family == "internlm2", phi3 = c.family == "phi3";
  c.max_position_embeddings = get<int64_t>(j, "max_position_embeddings", internlm2 ? 2048 : 4096);
  c.rms_norm_eps = get<double>(j, "rms_norm_eps", phi3 ? 1e-5 : 1e-6);
  c.rope.theta = get<double>(j, "rope_theta", 10000.0);
  c.tie_word_embeddings = get<bool>(j, "tie_word_embeddings", c.family == "qwen2");
  if (c.family == "qwen2") c.attention_bias = true;
  else if (internlm2) c.attention_bias = get<bool>(j, "bias", true);  // on wqkv and wo
  else c.attention_bias = get<bool>(j, "attention_bias", false);
  if (c.hidden_size % c.num_heads || c.num_heads % c.num_kv_heads)
    throw std::runtime_error(where + ": hidden_size/num_attention_heads/num_key_value_heads are inconsistent");
  auto rs = j.find("rope_scaling");
  if (rs != j.end() && rs->is_object()) {
    std::string type = get<std::string>(*rs, "rope_type", get<std::string>(*rs, "type", "default"));
    if (type == "su") type = "longrope";  // Phi-3's early name for it
    if (type != "default" && type != "linear" && type != "dynamic" && type != "longrope")
      throw std::runtime_error(where + ": rope_scaling type '" + type + "' is not supported");
    c.rope.type = type;
    c.rope.factor = get<double>(*rs, "factor", 1.0);
    c.rope.short_factor = get<std::vector<double>>(*rs, "short_factor", {});
    c.rope.long_factor = get<std::vector<double>>(*rs, "long_factor", {});
  }
  c.rope.original_max_position_embeddings = get<int64_t>(j, "original_max_position_embeddings", phi3 ? 4096 : 0);
  return c;
}

HfCheckpointInfo read_hf_config(const std::string& dir, ModelConfig& cfg) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path + " (is " + dir + " a Hugging Face checkpoint directory?)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw std::runtime_error(path + ": invalid JSON: " + e.what());
  }
  HfCheckpointInfo info;
  if (j.contains("llm_config")) {
    info.has_vision = true;
    info.llm_prefix = "language_model.";
    cfg.llm = llm_config_from_json(j["llm_config"], path + " llm_config");
    const json& v = require<json>(j, "vision_config", path);
    const std::string vw = path + " vision_config";
    cfg.vision.hidden_size = require<int64_t>(v, "hidden_size", vw);
    cfg.vision.intermediate_size = require<int64_t>(v, "intermediate_size", vw);
    cfg.vision.num_layers = require<int64_t>(v, "num_hidden_layers", vw);
    cfg.vision.num_heads = require<int64_t>(v, "num_attention_heads", vw);
    cfg.vision.patch_size = require<int64_t>(v, "patch_size", vw);
    cfg.vision.image_size = get<int64_t>(j, "force_image_size", require<int64_t>(v, "image_size", vw));
    cfg.vision.layer_norm_eps = get<double>(v, "layer_norm_eps", 1e-6);
    cfg.vision.norm_type = get<std::string>(v, "norm_type", "layer_norm");
    cfg.vision.qk_normalization = get<bool>(v, "qk_normalization", false);
    cfg.vision.qkv_bias = get<bool>(v, "qkv_bias", true);
    cfg.vision.initializer_factor = get<double>(v, "initializer_factor", 0.1);
    cfg.downsample_ratio = get<double>(j, "downsample_ratio", 0.5);
    cfg.image_token_index = get<int64_t>(j, "image_token_index", cfg.image_token_index);
    // Written by our exporter: the Phantom variant the tensors were trained with (official configs: gate, 1e-4).
    cfg.phantom = get<std::string>(j, "phantom", cfg.phantom);
    cfg.phantom_eta = get<double>(j, "phantom_eta", cfg.phantom_eta);
  } else {
    cfg.llm = llm_config_from_json(j, path);
  }
  return info;
}

json llm_config_json(const LlmConfig& c) {
  json j;
  static const std::map<std::string, std::pair<const char*, const char*>> names = {
      {"qwen2", {"Qwen2ForCausalLM", "qwen2"}},
      {"internlm2", {"InternLM2ForCausalLM", "internlm2"}},
      {"phi3", {"Phi3ForCausalLM", "phi3"}}};
  j["architectures"] = {names.at(c.family).first};
  j["model_type"] = names.at(c.family).second;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope.theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  if (c.family == "internlm2") j["bias"] = c.attention_bias;
  if (c.family == "phi3") j["attention_bias"] = c.attention_bias;
  if (c.family == "qwen2") j["use_sliding_window"] = false;
  if (c.rope.type != "default") {
    json rs = {{"type", c.rope.type}, {"rope_type", c.rope.type}};
    if (c.rope.type == "longrope") rs["short_factor"] = c.rope.short_factor, rs["long_factor"] = c.rope.long_factor;
    else rs["factor"] = c.rope.factor;
    j["rope_scaling"] = rs;
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (c.rope.original_max_position_embeddings > 0)
    j["original_max_position_embeddings"] = c.rope.original_max_position_embeddings;
  return j;
}

json phantom_config_json(const ModelConfig& c) {
  json j;
  j["architectures"] = {"PhantomForCausalLM"};
  j["model_type"] = "phantom";
  j["llm_config"] = llm_config_json(c.llm);
  const auto& v = c.vision;
  j["vision_config"] = {{"architectures", {"InternVisionModel"}}, {"model_type", "intern_vit_6b"},
                        {"hidden_size", v.hidden_size},          {"intermediate_size", v.intermediate_size},
                        {"num_hidden_layers", v.num_layers},     {"num_attention_heads", v.num_heads},
                        {"image_size", v.image_size},            {"patch_size", v.patch_size},
                        {"layer_norm_eps", v.layer_norm_eps},    {"norm_type", v.norm_type},
                        {"qk_normalization", v.qk_normalization}, {"qkv_bias", v.qkv_bias},
                        {"initializer_factor", v.initializer_factor}, {"hidden_act", "gelu"}};
  j["downsample_ratio"] = c.downsample_ratio;
  j["force_image_size"] = v.image_size;
  j["image_token_index"] = c.image_token_index;
  j["phantom"] = c.phantom;  // ours: which Phantom variant the tensors were trained with
  j["phantom_eta"] = c.phantom_eta;
  return j;
}

}  // namespace phantom
