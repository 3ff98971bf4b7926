// Tokenizer interface (byte-level BPE from tokenizer.json, SentencePiece from tokenizer.model).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace phantom::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  virtual std::optional<int32_t> token_to_id(const std::string& token) const = 0;
  virtual int64_t vocab_size() const = 0;
};

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace phantom::data
