// Fuzz targets of the tokenizer readers: tokenizer.json (a byte-level BPE as Qwen2 ships it and a SentencePiece-style
// BPE with byte fallback as Phi-3/Llama ship it), tokenizer.model (SentencePiece protobufs written here, unigram and
// BPE) and the tokenizer_config.json added tokens a tokenizer.model is loaded with. An accepted tokenizer must
// encode and decode a few texts with every id inside its vocabulary (what the embedding lookup assumes).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "data/tokenizers/hf_pipeline.h"
#include "data/tokenizers/tokenizer.h"
#include "tests/fuzz/fuzz.h"

namespace phantom::fuzz {
namespace {
using nlohmann::json;

const char* kTexts[] = {"Hello world, hello again!", "<|im_start|>user\n<image>\nWhat is it?<|im_end|>",
                        "  spaces\tand\r\nlines  ", "naïve café ☃ 12345", "<|user|> x <|end|>", ""};

// Encodes and decodes kTexts; an id outside [0, vocab_size) is a bug of the reader that accepted the file.
void exercise(const data::Tokenizer& tok) {
  const int64_t vocab = tok.vocab_size();
  for (const char* text : kTexts) {
    std::vector<data::TokenSpan> spans;
    const auto ids = tok.encode_with_spans(text, &spans);
    if (spans.size() != ids.size()) throw std::logic_error("spans and ids differ in number");
    for (auto id : ids)
      if (id < 0 || id >= vocab)
        throw std::logic_error("id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(vocab));
    for (const auto& s : spans)
      if (s.begin > s.end || s.end > std::strlen(text)) throw std::logic_error("span outside the text");
    (void)tok.decode(ids, false), (void)tok.decode(ids, true);
    for (auto id : ids) (void)tok.id_to_token(id);
  }
}

// ---- tokenizer.json ----------------------------------------------------------------------------------------------
std::string byte_level_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[data::hf::byte_to_unicode(static_cast<uint8_t>(b))] = b;
  const char* merged[] = {"he", "ll", "\xC4\xA0w", "hell", "\xC4\xA0h"};
  for (int i = 0; i < 5; ++i) vocab[merged[i]] = 256 + i;
  json j = {
      {"version", "1.0"},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h e", "l l", "\xC4\xA0 w", "he ll", {"\xC4\xA0", "h"}}},
                 {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false}, {"ignore_merges", false}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
                                  "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
           {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens",
       {{{"id", 261}, {"content", "<|im_start|>"}, {"special", true}, {"normalized", false}},
        {{"id", 262}, {"content", "<|im_end|>"}, {"special", true}, {"normalized", false}},
        {{"id", 263}, {"content", "<image>"}, {"special", false}, {"normalized", true}, {"single_word", false}}}}};
  return j.dump(1);
}

std::string sentencepiece_style_json(bool metaspace) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  int32_t id = 259;
  const char* pieces[] = {"\xE2\x96\x81", "h", "e", "l", "o", "w", "r", "d", "\xE2\x96\x81h", "el", "\xE2\x96\x81w", "or"};
  for (const char* p : pieces) vocab[p] = id++;
  json j = {{"model",
             {{"type", "BPE"}, {"vocab", vocab}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true},
              {"merges", {"\xE2\x96\x81 h", "e l", "\xE2\x96\x81 w", "o r"}}}},
            {"added_tokens",
             {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
              {{"id", 1}, {"content", "<s>"}, {"special", true}},
              {{"id", 2}, {"content", "</s>"}, {"special", true}},
              {{"id", 271}, {"content", "<|user|>"}, {"special", true}, {"rstrip", true}},
              {{"id", 272}, {"content", "<|end|>"}, {"special", true}, {"rstrip", true}, {"lstrip", true}}}}};
  if (metaspace) {
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"},
                          {"split", false}};
    j["decoder"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}};
  } else {
    j["normalizer"] = {{"type", "Sequence"},
                       {"normalizers",
                        {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                         {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
    j["decoder"] = {{"type", "Sequence"},
                    {"decoders",
                     {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                      {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  }
  return j.dump(1);
}

// ---- tokenizer.model: the SentencePiece ModelProto, written field by field ---------------------------------------
// (sentencepiece_model.proto: pieces = 1 {piece = 1, score = 2, type = 3}, trainer_spec = 2 {model_type = 3,
// byte_fallback = 35}, normalizer_spec = 3 {name = 1, add_dummy_prefix = 3, remove_extra_whitespaces = 4}.)
void varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7F) | 0x80);
  out += static_cast<char>(v);
}
void bytes_field(std::string& out, int field, const std::string& s) {
  varint(out, static_cast<uint64_t>(field) << 3 | 2);
  varint(out, s.size());
  out += s;
}
void varint_field(std::string& out, int field, uint64_t v) {
  varint(out, static_cast<uint64_t>(field) << 3);
  varint(out, v);
}
void float_field(std::string& out, int field, float f) {
  varint(out, static_cast<uint64_t>(field) << 3 | 5);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6 };

std::string sentencepiece_model(bool bpe) {
  std::string m;
  auto piece = [&](const std::string& text, float score, PieceType type) {
    std::string p;
    bytes_field(p, 1, text);
    float_field(p, 2, score);
    varint_field(p, 3, type);
    bytes_field(m, 1, p);
  };
  piece("<unk>", 0, kUnknown), piece("<s>", 0, kControl), piece("</s>", 0, kControl);
  piece("<|im_end|>", 0, kControl), piece("<image>", 0, kUserDefined);
  if (bpe)
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      piece(name, 0, kByte);
    }
  const char* words[] = {"\xE2\x96\x81", "\xE2\x96\x81h", "\xE2\x96\x81w", "el", "or", "ll", "h", "e", "l", "o", "w",
                         "r", "d", "a", "t", "i", "s", "?", ",", "!", "\n"};
  float score = -1;
  for (const char* w : words) piece(w, score -= 0.5f, kNormal);
  std::string trainer;
  varint_field(trainer, 3, bpe ? 2 : 1);  // model_type: UNIGRAM 1, BPE 2
  if (bpe) varint_field(trainer, 35, 1);  // byte_fallback
  bytes_field(m, 2, trainer);
  std::string normalizer;
  bytes_field(normalizer, 1, "identity");
  varint_field(normalizer, 3, 1), varint_field(normalizer, 4, 0);
  bytes_field(m, 3, normalizer);
  return m;
}

}  // namespace

std::vector<Target> tokenizer_targets(const fs::path& dir) {
  std::vector<Target> out;
  {
    Target t{"tokenizer.json", {byte_level_json(), sentencepiece_style_json(false), sentencepiece_style_json(true)},
             nullptr, "tokenizer.json"};
    const fs::path p = dir / "tokenizer.json";
    t.run = [p](const std::string& s) {
      write(p, s);
      exercise(*data::load_tokenizer(p.string()));
    };
    out.push_back(std::move(t));
  }
  const fs::path spm = dir / "spm";
  fs::create_directories(spm);
  {
    Target t{"tokenizer.model", {sentencepiece_model(false), sentencepiece_model(true)}, nullptr, "tokenizer.model"};
    const fs::path p = dir / "tokenizer.model";
    t.run = [p](const std::string& s) {
      write(p, s);
      exercise(*data::load_tokenizer(p.string()));
    };
    out.push_back(std::move(t));
  }
  {  // the added tokens of a slow tokenizer, loaded as a directory (tokenizer_class chooses the file)
    write(spm / "tokenizer.model", sentencepiece_model(true));
    const json cfg = {{"tokenizer_class", "InternLM2Tokenizer"},
                      {"added_tokens_decoder",
                       {{"0", {{"content", "<unk>"}, {"special", true}}},
                        {"3", {{"content", "<|im_end|>"}, {"special", true}, {"rstrip", false}}},
                        {"278", {{"content", "<|im_start|>"}, {"special", true}, {"lstrip", false}}},
                        {"279", {{"content", "<IMG_CONTEXT>"}, {"special", true}, {"single_word", false}}}}}};
    Target t{"tokenizer_config.json", {cfg.dump(2)}, nullptr, "tokenizer_config.json"};
    t.run = [spm](const std::string& s) {
      write(spm / "tokenizer_config.json", s);
      exercise(*data::load_tokenizer(spm.string()));
    };
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace phantom::fuzz
