#include "phantom/io/hf_config.h"
#include "phantom/model/config_checks.h"

#include <filesystem>
#include <cmath>
#include <fstream>

#include "phantom/util/files.h"

namespace phantom {
using nlohmann::json;

namespace {

// Typed reads that name the file and key on a wrong type (nlohmann's own message names neither).
[[noreturn]] void wrong_type(const std::string& where, const char* key, const char* expected, const json& v) {
  std::string shown = v.dump();
  if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
  throw std::runtime_error(where + ": key '" + key + "' must be " + expected + ", got " + shown);
}

void convert(const json& v, int64_t& out, const std::string& where, const char* key) {
  if (v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))) {
    out = v.get<int64_t>();
  } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::abs(v.get<double>()) < 9e18) {
    out = static_cast<int64_t>(v.get<double>());
  } else {
    wrong_type(where, key, "an integer", v);
  }
}
void convert(const json& v, double& out, const std::string& where, const char* key) {
  if (!v.is_number()) wrong_type(where, key, "a number", v);
  out = v.get<double>();
}
void convert(const json& v, bool& out, const std::string& where, const char* key) {
  if (!v.is_boolean()) wrong_type(where, key, "true or false", v);
  out = v.get<bool>();
}
void convert(const json& v, std::string& out, const std::string& where, const char* key) {
  if (!v.is_string()) wrong_type(where, key, "a string", v);
  out = v.get<std::string>();
}
void convert(const json& v, std::vector<double>& out, const std::string& where, const char* key) {
  if (!v.is_array()) wrong_type(where, key, "a list of numbers", v);
  out.clear();
  for (auto& x : v) {
    if (!x.is_number()) wrong_type(where, key, "a list of numbers", v);
    out.push_back(x.get<double>());
  }
}
void convert(const json& v, json& out, const std::string& where, const char* key) {
  if (!v.is_object()) wrong_type(where, key, "an object", v);
  out = v;
}

template <class T>
T get(const json& j, const char* key, const T& fallback, const std::string& where) {
  if (!j.is_object()) throw std::runtime_error(where + ": expected a JSON object");
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  T out{};
  convert(*it, out, where, key);
  return out;
}

template <class T>
T require(const json& j, const char* key, const std::string& where) {
  if (!j.is_object()) throw std::runtime_error(where + ": expected a JSON object");
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) throw std::runtime_error(where + ": missing key '" + key + "'");
  T out{};
  convert(*it, out, where, key);
  return out;
}

// A size read from config.json: a zero or negative count is a clear error here, with the file's own key name,
// instead of a division by zero (SIGFPE) or a vector sized negative when the modules are built.
int64_t require_count(const json& j, const char* key, const std::string& where) {
  const auto v = require<int64_t>(j, key, where);
  if (v < 1) throw std::runtime_error(where + ": key '" + key + "' must be >= 1, got " + std::to_string(v));
  return v;
}

std::string family_of(const json& j, const std::string& where) {
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty())
    arch = j["architectures"][0].is_string() ? j["architectures"][0].get<std::string>() : j["architectures"][0].dump();
  const std::string type = get<std::string>(j, "model_type", "", where);
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
  c.hidden_size = require_count(j, "hidden_size", where);
  c.intermediate_size = require_count(j, "intermediate_size", where);
  c.num_layers = require_count(j, "num_hidden_layers", where);
  c.num_heads = require_count(j, "num_attention_heads", where);
  c.num_kv_heads = get<int64_t>(j, "num_key_value_heads", c.num_heads, where);
  if (c.num_kv_heads < 1)
    throw std::runtime_error(where + ": key 'num_key_value_heads' must be >= 1, got " + std::to_string(c.num_kv_heads));
  c.vocab_size = require_count(j, "vocab_size", where);
  c.max_position_embeddings = get<int64_t>(j, "max_position_embeddings", 4096, where);
  c.rms_norm_eps = get<double>(j, "rms_norm_eps", 1e-6, where);
  c.rope.theta = get<double>(j, "rope_theta", 10000.0, where);
  c.tie_word_embeddings = get<bool>(j, "tie_word_embeddings", c.family == "qwen2", where);
  if (c.family == "qwen2") c.attention_bias = true;
  else if (c.family == "internlm2") c.attention_bias = get<bool>(j, "bias", false, where);
  else c.attention_bias = get<bool>(j, "attention_bias", false, where);
  if (c.hidden_size % c.num_heads || c.num_heads % c.num_kv_heads)
    throw std::runtime_error(where + ": hidden_size (" + std::to_string(c.hidden_size) +
                             ") must be a multiple of num_attention_heads (" + std::to_string(c.num_heads) +
                             "), itself a multiple of num_key_value_heads (" + std::to_string(c.num_kv_heads) + ")");
  auto rs = j.find("rope_scaling");
  if (rs != j.end() && rs->is_object()) {
    std::string type = get<std::string>(*rs, "rope_type", get<std::string>(*rs, "type", "default", where), where);
    if (type == "su") type = "longrope";  // Phi-3's early name for it
    if (type != "default" && type != "linear" && type != "dynamic" && type != "longrope")
      throw std::runtime_error(where + ": rope_scaling type '" + type + "' is not supported");
    c.rope.type = type;
    c.rope.factor = get<double>(*rs, "factor", 1.0, where);
    c.rope.short_factor = get<std::vector<double>>(*rs, "short_factor", {}, where);
    c.rope.long_factor = get<std::vector<double>>(*rs, "long_factor", {}, where);
  }
  c.rope.original_max_position_embeddings = get<int64_t>(j, "original_max_position_embeddings", 0, where);
  return c;
}

HfCheckpointInfo read_hf_config(const std::string& dir, ModelConfig& cfg) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  if (const std::string problem = util::file_problem(path); !problem.empty())
    throw std::runtime_error("cannot read " + path + ": " + problem + " (is " + dir +
                             " a Hugging Face checkpoint directory?)");
  json j;
  try {
    j = json::parse(util::read_regular_file(path, 64u << 20));
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
    cfg.vision.hidden_size = require_count(v, "hidden_size", vw);
    cfg.vision.intermediate_size = require_count(v, "intermediate_size", vw);
    cfg.vision.num_layers = require_count(v, "num_hidden_layers", vw);
    cfg.vision.num_heads = require_count(v, "num_attention_heads", vw);
    cfg.vision.patch_size = require_count(v, "patch_size", vw);
    cfg.vision.image_size = get<int64_t>(j, "force_image_size", require_count(v, "image_size", vw), path);
    cfg.vision.layer_norm_eps = get<double>(v, "layer_norm_eps", 1e-6, vw);
    cfg.vision.norm_type = get<std::string>(v, "norm_type", "layer_norm", vw);
    cfg.vision.qk_normalization = get<bool>(v, "qk_normalization", false, vw);
    cfg.vision.qkv_bias = get<bool>(v, "qkv_bias", true, vw);
    cfg.vision.initializer_factor = get<double>(v, "initializer_factor", 0.1, vw);
    cfg.downsample_ratio = get<double>(j, "downsample_ratio", 0.5, path);
    cfg.image_token_index = get<int64_t>(j, "image_token_index", cfg.image_token_index, path);
    // Written by our exporter: the Phantom variant the tensors were trained with (official configs: gate, 1e-4).
    cfg.phantom = get<std::string>(j, "phantom", cfg.phantom, path);
    cfg.phantom_eta = get<double>(j, "phantom_eta", cfg.phantom_eta, path);
  } else {
    cfg.llm = llm_config_from_json(j, path);
  }
  // Before any module is built from it (a zero head count would divide by zero, a negative layer count size a
  // vector). The problem is given in the YAML names (llm.num_layers), the keys above in config.json's own.
  if (std::string p = model_config_problem(cfg); !p.empty())
    throw std::runtime_error(path + ": invalid model config: " + p);
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
