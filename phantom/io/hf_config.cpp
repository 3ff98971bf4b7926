#include "phantom/io/hf_config.h"
#include "phantom/model/config_checks.h"

#include <filesystem>
#include <algorithm>
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

// A size that defaulted or was read: >= 1, or an error with the file's key name (checked before any division).
int64_t positive(int64_t v, const char* key, const std::string& where) {
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
  // transformers' InternVL stores InternLM2 backbones as Llama (split q/k/v, Llama names): the same network.
  if (arch.find("Llama") != std::string::npos || type == "llama") return "internlm2";
  throw std::runtime_error(where + ": unsupported LLM (architectures '" + arch + "', model_type '" + type +
                           "'); supported: Qwen2, InternLM2, Phi-3");
}


// eos_token_id: an int, a list of ints or absent.
std::vector<int64_t> eos_ids(const json& j, const std::string& where) {
  auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return {};
  std::vector<int64_t> ids;
  for (const auto& v : it->is_array() ? *it : json::array({*it})) ids.push_back(0), convert(v, ids.back(), where, "eos_token_id");
  return ids;
}

// image_size / patch_size: an int (InternVisionConfig) or [h, w] (InternVLVisionConfig, square only).
int64_t side(const json& v, const char* key, int64_t fallback, const std::string& where) {
  auto it = v.find(key);
  if (it == v.end() || it->is_null()) return fallback;
  int64_t out = 0;
  if (!it->is_array()) return convert(*it, out, where, key), out;
  if (it->size() != 2 || (*it)[0] != (*it)[1])
    throw std::runtime_error(where + ": " + key + " " + it->dump() + ": only square sizes are supported");
  return convert((*it)[0], out, where, key), out;
}

// "phantom_prompt" of our exports; an export from before it has only "image_placement"; an official checkpoint
// neither (the official prompt: defaults). Our exports from before multi_image was a choice were all trained with
// first_turn, and keep it. The names are checked where the prompt is built (the loader).
PromptConfig read_prompt_config(const json& j, const std::string& path) {
  PromptConfig p;
  p.image_placement = get<std::string>(j, "image_placement", p.image_placement, path);
  if (j.contains("image_placement")) p.source = path + " (image_placement only)", p.multi_image = "first_turn";
  if (!j.contains("phantom_prompt")) return p;
  p.multi_image = "first_turn";
  const json& s = j["phantom_prompt"];
  const std::string where = path + " phantom_prompt";
  p.chat_template = get<std::string>(s, "chat_template", p.chat_template, where);
  p.max_tiles = positive(get<int64_t>(s, "max_tiles", p.max_tiles, where), "max_tiles", where);
  p.use_thumbnail = get<bool>(s, "use_thumbnail", p.use_thumbnail, where);
  p.image_placement = get<std::string>(s, "image_placement", p.image_placement, where);
  p.multi_image = get<std::string>(s, "multi_image", p.multi_image, where);
  p.source = path;
  return p;
}

}  // namespace

// InternVisionConfig (remote code) or InternVLVisionConfig (transformers-native); an omitted key takes the default
// of the class that wrote the file, so a config that relies on defaults builds the same network as upstream.
void read_vision_config(const json& v, const std::string& where, VisionConfig& c) {
  const bool native = get<std::string>(v, "model_type", "", where) == "internvl_vision";
  c.hidden_size = positive(get<int64_t>(v, "hidden_size", native ? 1024 : 3200, where), "hidden_size", where);
  c.intermediate_size = positive(get<int64_t>(v, "intermediate_size", native ? 4096 : 12800, where), "intermediate_size", where);
  c.num_layers = positive(get<int64_t>(v, "num_hidden_layers", native ? 24 : 48, where), "num_hidden_layers", where);
  c.num_heads = positive(get<int64_t>(v, "num_attention_heads", native ? 16 : 25, where), "num_attention_heads", where);
  c.patch_size = positive(side(v, "patch_size", 14, where), "patch_size", where);
  c.image_size = positive(side(v, "image_size", native ? 448 : 224, where), "image_size", where);
  c.layer_norm_eps = get<double>(v, "layer_norm_eps", 1e-6, where);
  if (native) {
    c.norm_type = get<std::string>(v, "norm_type", "layer_norm", where);
    c.qk_normalization = get<bool>(v, "use_qk_norm", false, where);
    c.qkv_bias = get<bool>(v, "attention_bias", false, where);
    c.initializer_factor = get<double>(v, "layer_scale_init_value", 0.1, where);
    if (!get<bool>(v, "use_absolute_position_embeddings", true, where) || !get<bool>(v, "use_mean_pooling", true, where))
      throw std::runtime_error(where + ": use_absolute_position_embeddings / use_mean_pooling false (a final ViT norm) "
                               "are not supported");
  } else {
    c.norm_type = get<std::string>(v, "norm_type", "rms_norm", where);
    c.qk_normalization = get<bool>(v, "qk_normalization", true, where);
    c.qkv_bias = get<bool>(v, "qkv_bias", false, where);
    c.initializer_factor = get<double>(v, "initializer_factor", 0.1, where);
  }
  if (c.norm_type != "layer_norm" && c.norm_type != "rms_norm")
    throw std::runtime_error(where + ": norm_type '" + c.norm_type + "' is not supported (layer_norm | rms_norm)");
  if (c.hidden_size % c.num_heads || c.image_size % c.patch_size)
    throw std::runtime_error(where + ": hidden_size/num_attention_heads or image_size/patch_size are inconsistent");
  const std::string act = get<std::string>(v, "hidden_act", "gelu", where);
  if (act != "gelu") throw std::runtime_error(where + ": hidden_act '" + act + "' is not supported (gelu)");
}

LlmConfig llm_config_from_json(const json& j, const std::string& where) {
  LlmConfig c;
  c.family = family_of(j, where);
  // Omitted keys take the defaults of the class that wrote the file: Qwen2Config's (Qwen2-7B's shape; the other
  // families' files must give the shape), InternLM2Config's, Phi3Config's, LlamaConfig's (transformers' InternVL
  // stores InternLM2 backbones as Llama).
  const bool qwen = c.family == "qwen2", phi3 = c.family == "phi3", internlm2 = c.family == "internlm2";
  const bool as_llama = get<std::string>(j, "model_type", "", where) == "llama";
  auto shape = [&](const char* key, int64_t qwen2_default) {
    return positive(qwen ? get<int64_t>(j, key, qwen2_default, where) : require<int64_t>(j, key, where), key, where);
  };
  c.hidden_size = shape("hidden_size", 4096);
  c.intermediate_size = shape("intermediate_size", 22016);
  c.num_layers = shape("num_hidden_layers", 32);
  c.num_heads = shape("num_attention_heads", 32);
  c.num_kv_heads = positive(get<int64_t>(j, "num_key_value_heads", qwen ? 32 : c.num_heads, where), "num_key_value_heads", where);
  c.vocab_size = shape("vocab_size", 151936);
  c.max_position_embeddings =
      get<int64_t>(j, "max_position_embeddings", qwen ? 32768 : (internlm2 && !as_llama) ? 2048 : 4096, where);
  c.rms_norm_eps = get<double>(j, "rms_norm_eps", phi3 ? 1e-5 : 1e-6, where);
  c.rope.theta = get<double>(j, "rope_theta", 10000.0, where);
  // Qwen2Config, Phi3Config and InternLM2Config all default to an untied head (Qwen2-0.5B says true explicitly).
  c.tie_word_embeddings = get<bool>(j, "tie_word_embeddings", false, where);
  c.eos_token_ids = eos_ids(j, where);
  if (c.family == "qwen2") c.attention_bias = true;
  else if (internlm2)  // InternLM2Config: bias on wqkv and wo, true unless said; LlamaConfig: attention_bias false
    c.attention_bias = get<bool>(j, "bias", get<bool>(j, "attention_bias", !as_llama, where), where);
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
  c.rope.original_max_position_embeddings = get<int64_t>(j, "original_max_position_embeddings", phi3 ? 4096 : 0, where);
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
  } catch (const json::exception& e) {  // parse errors and out-of-range numbers (1e309) alike
    throw std::runtime_error(path + ": invalid JSON: " + e.what());
  }
  HfCheckpointInfo info;
  if (j.contains("llm_config")) {  // Phantom / InternVL2 remote code (InternVLChatConfig)
    info.layout = "internvl_chat";
    info.has_vision = true;
    info.llm_prefix = "language_model.";
    cfg.llm = llm_config_from_json(j["llm_config"], path + " llm_config");
    read_vision_config(require<json>(j, "vision_config", path), path + " vision_config", cfg.vision);
    cfg.vision.image_size = get<int64_t>(j, "force_image_size", cfg.vision.image_size, path);
    // InternVL2 remote code: the last ViT layer, pixel shuffle v2; other settings change the model.
    if (get<int64_t>(j, "select_layer", -1, path) != -1)
      throw std::runtime_error(path + ": select_layer " + j["select_layer"].dump() + " is not supported (only -1)");
    // Omitted keys take InternVLChatConfig's defaults; its ps_version default is v1 (pixel shuffle without the
    // final transpose). Our own exports were v2 before they wrote the key.
    const bool ours = get<std::string>(j, "model_type", "", path) == "phantom";
    const auto ps = get<std::string>(j, "ps_version", ours ? "v2" : "v1", path);
    if (ps != "v2")
      throw std::runtime_error(path + ": ps_version '" + ps + "'" +
                               (j.contains("ps_version") ? "" : " (omitted: InternVLChatConfig's default)") +
                               " is not supported (only v2, the pixel shuffle of every InternVL2 and Phantom release)");
    cfg.downsample_ratio = get<double>(j, "downsample_ratio", 0.5, path);
    cfg.image_token_index = get<int64_t>(j, "image_token_index", cfg.image_token_index, path);
    // Written by our exporter: the Phantom variant the tensors were trained with (official configs: gate, 1e-4).
    cfg.phantom = get<std::string>(j, "phantom", cfg.phantom, path);
    cfg.phantom_eta = get<double>(j, "phantom_eta", cfg.phantom_eta, path);
    // Ours: the prompt of training (chat template, tiling, image rules); the official code's prompt otherwise.
    cfg.prompt = read_prompt_config(j, path);
    if (auto e = eos_ids(j, path); !e.empty()) cfg.llm.eos_token_ids = e;
  } else if (j.contains("text_config") || get<std::string>(j, "model_type", "", path) == "internvl") {
    // transformers' InternVLForConditionalGeneration (InternVLConfig)
    const std::string where = path + " (InternVLConfig)";
    info.layout = "internvl_hf";
    info.has_vision = true;
    info.llm_prefix = "language_model.";
    cfg.llm = llm_config_from_json(require<json>(j, "text_config", where), path + " text_config");
    json v = get<json>(j, "vision_config", json::object(), where);
    if (!v.contains("model_type")) v["model_type"] = "internvl_vision";
    read_vision_config(v, path + " vision_config", cfg.vision);
    cfg.downsample_ratio = get<double>(j, "downsample_ratio", 0.5, where);
    cfg.image_token_index = get<int64_t>(j, "image_token_id", 151667, where);
    const auto layer = get<int64_t>(j, "vision_feature_layer", -1, where);
    const auto select = get<std::string>(j, "vision_feature_select_strategy", "default", where);
    const auto act = get<std::string>(j, "projector_hidden_act", "gelu", where);
    if (layer != -1 || select != "default" || act != "gelu")
      throw std::runtime_error(where + ": vision_feature_layer " + std::to_string(layer) + ", vision_feature_select_strategy '" +
                               select + "', projector_hidden_act '" + act + "' are not supported (only -1, default, gelu)");
    if (auto e = eos_ids(j, where); !e.empty()) cfg.llm.eos_token_ids = e;
  } else {
    cfg.llm = llm_config_from_json(j, path);
  }
  // generation_config.json's eos ids stop generation too (HF's generate reads both).
  if (std::ifstream g(std::filesystem::path(dir) / "generation_config.json"); g) {
    const json gj = json::parse(g, nullptr, false);
    if (gj.is_object())
      for (auto e : eos_ids(gj, dir + "/generation_config.json"))
        if (std::find(cfg.llm.eos_token_ids.begin(), cfg.llm.eos_token_ids.end(), e) == cfg.llm.eos_token_ids.end())
          cfg.llm.eos_token_ids.push_back(e);
  }
  // Before any module is built from it (a zero head count would divide by zero, a negative layer count size a
  // vector). The problem is given in the YAML names (llm.num_layers), the keys above in config.json's own.
  if (std::string p = model_config_problem(cfg); !p.empty())
    throw std::runtime_error(path + ": invalid model config: " + p);
  // Special ids index the embedding: outside it, eos could never stop generation and the image token never match.
  const int64_t vocab = cfg.llm.vocab_size;
  auto in_vocab = [&](int64_t id, const std::string& key) {
    if (id < 0 || id >= vocab)
      throw std::runtime_error(path + ": " + key + " " + std::to_string(id) + " is outside the vocabulary (vocab_size " +
                               std::to_string(vocab) + ")");
  };
  for (auto e : cfg.llm.eos_token_ids) in_vocab(e, "eos_token_id (config.json or generation_config.json)");
  const char* image_key = info.layout == "internvl_hf" ? "image_token_id" : "image_token_index";
  if (info.has_vision && j.contains(image_key) && cfg.image_token_index != -1)  // -1: looked up in the tokenizer
    in_vocab(cfg.image_token_index, image_key);
  return info;
}

// An InternViT checkpoint's config.json (InternVisionConfig at the top level, or the vision_config of a VLM).
void read_vision_dir_config(const std::string& dir, VisionConfig& v) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path + " (is " + dir + " an InternViT checkpoint directory?)");
  const json j = json::parse(in, nullptr, false);
  if (!j.is_object()) throw std::runtime_error(path + ": invalid JSON");
  read_vision_config(j.contains("vision_config") ? j["vision_config"] : j, path, v);
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
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
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
  j["ps_version"] = "v2";  // InternVLChatConfig reads an omitted one as v1
  j["select_layer"] = -1;
  j["force_image_size"] = v.image_size;
  j["image_token_index"] = c.image_token_index;
  j["phantom"] = c.phantom;  // ours: which Phantom variant the tensors were trained with
  j["phantom_eta"] = c.phantom_eta;
  // Ours: everything the prompt of training depended on, used again by `eval` and `generate`.
  const auto& p = c.prompt;
  j["phantom_prompt"] = {{"chat_template", p.chat_template}, {"max_tiles", p.max_tiles},
                         {"use_thumbnail", p.use_thumbnail}, {"image_placement", p.image_placement},
                         {"multi_image", p.multi_image}};
  return j;
}

}  // namespace phantom
