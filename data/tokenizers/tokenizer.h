// Tokenizers: byte-level BPE from a Hugging Face tokenizer.json (Qwen2) and SentencePiece from a tokenizer.model
// (InternLM2, Phi-3). Added/special tokens (<|im_start|>, <img>, <IMG_CONTEXT>, ...) are matched atomically
// before the model sees the text, so they are never split.
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
  // Text -> ids, no BOS/EOS added. Thread-safe.
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  virtual std::optional<int32_t> token_to_id(const std::string& token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;  // largest id + 1, added tokens included
};

// `path`: a tokenizer.json, a tokenizer.model, or a directory holding one (tokenizer.json preferred, as HF's
// fast tokenizers do). Errors name the file and the unsupported feature.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& tokenizer_json);
// `added_tokens`: special tokens to match atomically (read from the directory's tokenizer_config.json /
// added_tokens.json when loading a directory).
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path,
                                                        const std::vector<std::pair<std::string, int32_t>>& added_tokens);

// Splits `text` into plain segments and added-token matches (longest match wins at a position).
struct Piece {
  std::string text;
  int32_t special_id = -1;  // >= 0: an added token
};
class AddedTokenMatcher {
 public:
  void add(const std::string& content, int32_t id);
  std::vector<Piece> split(const std::string& text) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<std::pair<std::string, int32_t>> tokens_;  // sorted longest first
  std::vector<std::vector<size_t>> by_first_byte_ = std::vector<std::vector<size_t>>(256);
};

}  // namespace phantom::data
