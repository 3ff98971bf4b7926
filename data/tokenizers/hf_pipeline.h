// The parts of a Hugging Face tokenizer.json around the model, for the files the Phantom backbones ship:
//   normalizer     NFC / NFKC / NFD / NFKD (ICU), Prepend, Replace, Sequence          (Qwen2: NFC; Phi-3: Prepend ▁ + Replace ' ' -> ▁)
//   pre_tokenizer  Split (Isolated, PCRE2), ByteLevel, Metaspace, Sequence             (Qwen2: Split + ByteLevel; Llama-style: Metaspace or none)
//   decoder        ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence
// Anything else is an error naming the file and the component, never a silent approximation.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/tokenizers/tokenizer.h"

namespace phantom::data::hf {

class Regex;

// Offset tracking: the span of the input text each byte of a rewritten string comes from (one TokenSpan per byte).
// Every step below takes an optional alignment and keeps it in step with the string; nullptr skips the tracking.
using Alignment = std::vector<TokenSpan>;
// Each byte of `s` mapped to its own character, shifted by `offset`.
Alignment char_alignment(const std::string& s, size_t offset);
// The span covering bytes [b, e) of an aligned string (b == e: the empty span where byte b begins).
TokenSpan cover(const Alignment& a, size_t b, size_t e);

class Normalizer {
 public:
  Normalizer() = default;
  Normalizer(const nlohmann::json& j, const std::string& file);  // j: the "normalizer" value (may be null)
  std::string apply(const std::string& s, Alignment* align = nullptr) const;
  bool empty() const { return steps_.empty(); }
  std::string describe() const;

 private:
  struct Step {
    std::string kind, a, b;  // Prepend: a; Replace: a -> b (or regex -> b)
    std::shared_ptr<Regex> re;
  };
  void read(const nlohmann::json& j, const std::string& file);
  std::vector<Step> steps_;
};

class PreTokenizer {
 public:
  PreTokenizer() = default;
  PreTokenizer(const nlohmann::json& j, const std::string& file);  // j: the "pre_tokenizer" value (may be null)
  // One segment between added tokens -> words. `at_input_start`: the segment begins the input (Metaspace's
  // prepend_scheme "first" adds ▁ only there).
  // With `align` (the alignment of s), `word_align` receives the alignment of each word.
  std::vector<std::string> apply(const std::string& s, bool at_input_start, const Alignment* align = nullptr,
                                 std::vector<Alignment>* word_align = nullptr) const;
  bool byte_level() const { return byte_level_; }
  std::string describe() const;

 private:
  struct Step {
    std::string kind;  // split | byte_level | metaspace
    std::shared_ptr<Regex> re;
    bool prefix_space = false;  // ByteLevel add_prefix_space
    std::string replacement;    // Metaspace
    std::string prepend = "always";
    bool split = true;
  };
  void read(const nlohmann::json& j, const std::string& file);
  std::vector<Step> steps_;
  bool byte_level_ = false;
};

class Decoder {
 public:
  Decoder() = default;
  Decoder(const nlohmann::json& j, const std::string& file);  // j: the "decoder" value (may be null)
  std::string decode(std::vector<std::string> tokens) const;
  std::string describe() const;

 private:
  struct Step {
    std::string kind;  // byte_level | metaspace | replace | byte_fallback | fuse | strip
    std::string a, b;
    size_t start = 0, stop = 0;
    bool prepend = true;
  };
  void read(const nlohmann::json& j, const std::string& file);
  std::vector<Step> steps_;
};

// GPT-2's byte <-> printable character mapping of byte-level BPE.
const std::string& byte_to_unicode(uint8_t b);
// Invalid UTF-8 replaced by U+FFFD, as Rust's String::from_utf8_lossy.
std::string utf8_lossy(const std::string& bytes);

}  // namespace phantom::data::hf
