#include "data/tokenizers/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace phantom::data {
namespace fs = std::filesystem;

void AddedTokenMatcher::add(const std::string& content, int32_t id) {
  if (content.empty()) return;
  tokens_.emplace_back(content, id);
  std::stable_sort(tokens_.begin(), tokens_.end(), [](auto& a, auto& b) { return a.first.size() > b.first.size(); });
  for (auto& v : by_first_byte_) v.clear();
  for (size_t i = 0; i < tokens_.size(); ++i)
    by_first_byte_[static_cast<unsigned char>(tokens_[i].first[0])].push_back(i);
}

std::vector<Piece> AddedTokenMatcher::split(const std::string& text) const {
  std::vector<Piece> out;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (size_t k : by_first_byte_[static_cast<unsigned char>(text[i])])  // longest first
      if (text.compare(i, tokens_[k].first.size(), tokens_[k].first) == 0) {
        hit = &tokens_[k];
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    if (i > start) out.push_back({text.substr(start, i - start), -1});
    out.push_back({hit->first, hit->second});
    i += hit->first.size();
    start = i;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  fs::path p(path);
  if (!fs::exists(p)) throw std::runtime_error("tokenizer not found: " + path);
  if (fs::is_directory(p)) {
    if (fs::exists(p / "tokenizer.json")) return load_bpe_tokenizer((p / "tokenizer.json").string());
    if (fs::exists(p / "tokenizer.model")) {
      // Added tokens of slow tokenizers live in tokenizer_config.json (added_tokens_decoder) or added_tokens.json.
      std::vector<std::pair<std::string, int32_t>> added;
      if (std::ifstream in(p / "tokenizer_config.json"); in) {
        auto j = nlohmann::json::parse(in, nullptr, false);
        if (j.is_object() && j.contains("added_tokens_decoder"))
          for (auto& [id, t] : j["added_tokens_decoder"].items())
            added.emplace_back(t.value("content", ""), std::stoi(id));
      }
      if (std::ifstream in(p / "added_tokens.json"); in) {
        auto j = nlohmann::json::parse(in, nullptr, false);
        if (j.is_object())
          for (auto& [content, id] : j.items()) added.emplace_back(content, id.get<int32_t>());
      }
      return load_sentencepiece_tokenizer((p / "tokenizer.model").string(), added);
    }
    throw std::runtime_error(path + ": no tokenizer.json or tokenizer.model in the directory");
  }
  if (p.extension() == ".json") return load_bpe_tokenizer(path);
  if (p.extension() == ".model") return load_sentencepiece_tokenizer(path, {});
  throw std::runtime_error(path + ": unknown tokenizer file (expected tokenizer.json or tokenizer.model)");
}

}  // namespace phantom::data
