#include "data/tokenizers/tokenizer.h"

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

// Added tokens of a slow tokenizer: tokenizer_config.json's added_tokens_decoder (with their strip rules) and
// added_tokens.json (plain strings).
std::vector<AddedToken> slow_added_tokens(const fs::path& dir) {
  std::vector<AddedToken> added;
  const json cfg = read_json_or_null(dir / "tokenizer_config.json");
  if (cfg.is_object() && cfg.contains("added_tokens_decoder"))
    for (auto& [id, t] : cfg["added_tokens_decoder"].items()) added.push_back(added_token_from_json(t, std::stoi(id)));
  const json extra = read_json_or_null(dir / "added_tokens.json");
  if (extra.is_object())
    for (auto& [content, id] : extra.items()) {
      bool known = false;
      for (auto& a : added) known |= a.content == content;
      if (!known) added.push_back(added_token_from_json(json(content), id.get<int32_t>()));
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
    const std::string cls = cfg.is_object() ? cfg.value("tokenizer_class", "") : "";
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
