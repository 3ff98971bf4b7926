// Tokenizers, as Hugging Face's code tokenises for the Phantom backbones:
//   - tokenizer.json (bpe_tokenizer.cpp): byte-level BPE (Qwen2) and SentencePiece-style BPE with byte fallback and
//     the `▁` metaspace (Phi-3, Llama, InternLM2 exported by LlamaTokenizerFast), with the normalisers,
//     pre-tokenizers and decoders those files use (hf_pipeline.h);
//   - tokenizer.model (sentencepiece_tokenizer.cpp): SentencePiece through libsentencepiece, as the slow
//     InternLM2/Llama tokenizers call it.
// Added tokens (<|im_start|>, <|user|>, <img>, <IMG_CONTEXT>, ...) are matched atomically before the model sees
// the text, with their lstrip/rstrip/single_word/normalized rules (added_tokens.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace phantom::data {

// The bytes [begin, end) of the encoded text that a token stands for, as HF's offset mapping (in bytes, not
// characters). A prefix `▁` or space the tokenizer adds belongs to the character after it; each byte-fallback
// token of a character covers the whole character; text a normaliser rewrote maps to the text it came from; an
// added token covers its own text only (the whitespace its lstrip/rstrip swallows is dropped, so it belongs to
// no token; HF's offsets include it).
struct TokenSpan {
  uint32_t begin = 0, end = 0;
  bool operator==(const TokenSpan& o) const { return begin == o.begin && end == o.end; }
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text -> ids, no BOS/EOS added. Thread-safe.
  std::vector<int32_t> encode(const std::string& text) const { return encode_with_spans(text, nullptr); }
  // The same ids and, when `spans` is given, the span of each token (spans->size() == ids.size()).
  virtual std::vector<int32_t> encode_with_spans(const std::string& text, std::vector<TokenSpan>* spans) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  virtual std::optional<int32_t> token_to_id(const std::string& token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;  // largest id + 1, added tokens included
  // The file the tokenizer was read from and its kind ("tokenizer.json (byte-level BPE)", ...), for logs.
  virtual std::string describe() const = 0;
};

// `path`: a tokenizer.json, a tokenizer.model, or a directory holding one. In a directory tokenizer.json wins (as
// HF's AutoTokenizer prefers the fast tokenizer), except when tokenizer_config.json names a slow-only class
// (InternLM2Tokenizer: the official InternLM2 code reads tokenizer.model); without tokenizer.json, tokenizer.model.
// The choice is logged. Errors name the file and the unsupported feature.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& tokenizer_json);

// An added token and its matching rules (HF `AddedToken`).
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // skipped by decode(skip_special = true)
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // ... and on its right (Phi-3's <|user|>, <|assistant|>, <|end|>)
  bool single_word = false;  // matches only between non-word characters
  bool normalized = false;   // tokenizer.json: matched in the normalised text instead of the raw text
};

// `added_tokens`: matched atomically (read from the directory's tokenizer_config.json `added_tokens_decoder` /
// added_tokens.json when loading a directory).
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path,
                                                        const std::vector<AddedToken>& added_tokens);

// Splits `text` into plain segments and added-token matches: leftmost match first, the longest one at a position,
// then the token's strip rules (the whitespace they swallow belongs to the match and is dropped).
struct Piece {
  std::string text;
  int32_t special_id = -1;  // >= 0: an added token
  size_t offset = 0;        // byte offset of `text` in the split string (an added token: where its match begins)
  size_t token_begin = 0, token_end = 0;  // an added token: its own text in the split string, without stripped whitespace
};
class AddedTokenMatcher {
 public:
  // `pattern`: the text matched (the content, or its normalised form); empty patterns are ignored.
  void add(const AddedToken& token, const std::string& pattern);
  void add(const AddedToken& token) { add(token, token.content); }
  std::vector<Piece> split(const std::string& text) const;
  bool empty() const { return tokens_.empty(); }

 private:
  struct Entry {
    std::string pattern;
    AddedToken token;
  };
  std::vector<Entry> tokens_;  // sorted longest first
  std::vector<std::vector<size_t>> by_first_byte_ = std::vector<std::vector<size_t>>(256);
};

// UTF-8 helpers shared by the tokenizers.
size_t utf8_len(unsigned char lead);
// Code point ending at byte `end` (exclusive) / starting at `begin`; sets *n to its byte length.
int32_t utf8_prev(const std::string& s, size_t end, size_t* n);
int32_t utf8_next(const std::string& s, size_t begin, size_t* n);
bool is_unicode_whitespace(int32_t cp);

}  // namespace phantom::data
