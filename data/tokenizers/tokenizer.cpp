#include "data/tokenizers/tokenizer.h"

#include <climits>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "phantom/util/log.h"

namespace phantom::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json_or_null(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return json();
  auto j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error(p.string() + ": invalid JSON");
  return j;
}

AddedToken added_token_from_json(const json& t, int32_t id) {
  AddedToken a;
  a.id = id;
  if (t.is_string()) {
    a.content = t.get<std::string>();
    return a;
  }
  a.content = t.value("content", "");
  a.special = t.value("special", false);
  a.lstrip = t.value("lstrip", false);
  a.rstrip = t.value("rstrip", false);
  a.single_word = t.value("single_word", false);
  a.normalized = t.value("normalized", false);
  return a;
}

// An id written as a JSON key ("32000"): decimal digits only, below 2^31.
int32_t id_from_key(const std::string& key, const std::string& where) {
  if (key.empty() || key.size() > 10 || key.find_first_not_of("0123456789") != std::string::npos ||
      std::stoll(key) > INT32_MAX)
    throw std::runtime_error(where + ": token id must be a non-negative integer, got " + json(key).dump());
  return static_cast<int32_t>(std::stoll(key));
}

// Added tokens of a slow tokenizer: tokenizer_config.json's added_tokens_decoder (with their strip rules) and
// added_tokens.json (plain strings). Ids are checked against the model's pieces when it is loaded.
std::vector<AddedToken> slow_added_tokens(const fs::path& dir) {
  std::vector<AddedToken> added;
  const fs::path cfg_path = dir / "tokenizer_config.json", extra_path = dir / "added_tokens.json";
  std::string where = cfg_path.string() + ": added_tokens_decoder";
  try {
    const json cfg = read_json_or_null(cfg_path);
    if (cfg.is_object() && cfg.contains("added_tokens_decoder"))
      for (auto& [id, t] : cfg["added_tokens_decoder"].items()) {
        where = cfg_path.string() + ": added_tokens_decoder[" + json(id).dump() + "]";
        added.push_back(added_token_from_json(t, id_from_key(id, where)));
      }
    const json extra = read_json_or_null(extra_path);
    if (extra.is_object())
      for (auto& [content, id] : extra.items()) {
        where = extra_path.string() + ": " + json(content).dump();
        bool known = false;
        for (auto& a : added) known |= a.content == content;
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
          throw std::runtime_error(where + ": token id must be a non-negative integer, got " + id.dump());
        if (!known) added.push_back(added_token_from_json(json(content), id.get<int32_t>()));
      }
  } catch (const json::exception& e) {
    throw std::runtime_error(where + ": " + e.what());
  }
  return added;
}

std::unique_ptr<Tokenizer> logged(std::unique_ptr<Tokenizer> t) {
  log::info("tokenizer: " + t->describe());
  return t;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  fs::path p(path);
  if (!fs::exists(p)) throw std::runtime_error("tokenizer not found: " + path);
  if (fs::is_directory(p)) {
    const bool has_json = fs::exists(p / "tokenizer.json"), has_model = fs::exists(p / "tokenizer.model");
    const json cfg = read_json_or_null(p / "tokenizer_config.json");
    const json cls_value = cfg.is_object() ? cfg.value("tokenizer_class", json()) : json();
    if (!cls_value.is_null() && !cls_value.is_string())
      throw std::runtime_error((p / "tokenizer_config.json").string() + ": tokenizer_class must be a string, got " +
                               cls_value.dump());
    const std::string cls = cls_value.is_string() ? cls_value.get<std::string>() : "";
    // InternLM2's official tokenizer class is slow-only: it encodes with tokenizer.model even when a converted
    // tokenizer.json sits next to it.
    const bool slow_only = cls == "InternLM2Tokenizer";
    if (has_json && !(slow_only && has_model)) return logged(load_bpe_tokenizer((p / "tokenizer.json").string()));
    if (has_model)
      return logged(load_sentencepiece_tokenizer((p / "tokenizer.model").string(), slow_added_tokens(p)));
    throw std::runtime_error(path + ": no tokenizer.json or tokenizer.model in the directory");
  }
  if (p.extension() == ".json") return logged(load_bpe_tokenizer(path));
  if (p.extension() == ".model") return logged(load_sentencepiece_tokenizer(path, slow_added_tokens(p.parent_path())));
  throw std::runtime_error(path + ": unknown tokenizer file (expected tokenizer.json or tokenizer.model)");
}

}  // namespace phantom::data
