// Chat templates (SPEC §5) and the encoding of samples into token ids with label masks built by construction:
// every segment (prompt text, image placeholders, answer) is tokenised on its own and the ids are concatenated,
// so the supervised span is exactly the answer + end token, whatever the tokenizer does at boundaries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/annotations.h"
#include "data/tokenizers/tokenizer.h"

namespace phantom::data {

constexpr int32_t kIgnore = -100;  // label of a masked (unsupervised) position

struct ChatTemplate {
  std::string name;
  std::string user_start, user_end, assistant_start, assistant_end;
  std::string pad_token;  // fills padded positions (never attended to, never supervised)
  // chatml (Qwen2, InternLM2): <|im_start|>user\n{Q}<|im_end|><|im_start|>assistant\n{A}<|im_end|>
  // phi3:                      <|user|>\n{Q}<|end|><|assistant|>\n{A}<|end|>
  static ChatTemplate by_name(const std::string& name);
  // "auto" picks by backbone family: qwen2/internlm2 -> chatml, phi3 -> phi3.
  static ChatTemplate resolve(const std::string& setting, const std::string& family);
  // The id of pad_token, or of assistant_end when the tokenizer lacks it (InternLM2 has no <|endoftext|>).
  int32_t pad_id(const Tokenizer& tok) const;
};

// The ids that stand for images: <img> <IMG_CONTEXT>×(tokens_per_tile·tiles) </img>.
struct ImageTokens {
  int32_t img_start = -1, img_context = -1, img_end = -1;
  int64_t tokens_per_tile = 256;
  // Looks the three special tokens up in the tokenizer; a missing one is an error naming it.
  static ImageTokens from_tokenizer(const Tokenizer& tok, int64_t tokens_per_tile);
};

struct EncodedConversation {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;  // kIgnore on prompt positions
};

// The prompt of a preference sample (image + question + assistant start) and its answers (each with the end
// token): answers[0] is the chosen one, then every rejected answer.
struct EncodedPreference {
  std::vector<int32_t> prompt;
  std::vector<std::vector<int32_t>> answers;
};

class SampleEncoder {
 public:
  SampleEncoder(const Tokenizer& tok, ChatTemplate tmpl, ImageTokens img) : tok_(tok), tmpl_(std::move(tmpl)), img_(img) {}

  // `tiles[i]` = tile count of the sample's i-th image. Placeholders `<image>` in the text become image token
  // runs; when the text has none, one per image is prepended to the first question (as Phantom does).
  EncodedConversation conversation(const Sample& s, const std::vector<int64_t>& tiles) const;
  EncodedPreference preference(const Sample& s, const std::vector<int64_t>& tiles) const;
  // Prompt of an evaluation question (no answer).
  std::vector<int32_t> prompt(const std::string& question, const std::vector<int64_t>& tiles) const;

  const ChatTemplate& chat_template() const { return tmpl_; }
  const ImageTokens& image_tokens() const { return img_; }

 private:
  std::vector<int32_t> text_with_images(const std::string& text, const std::vector<int64_t>& tiles,
                                        size_t* next_image) const;
  std::vector<int32_t> user_turn(const std::string& q, const std::vector<int64_t>& tiles, size_t* next_image,
                                 bool first) const;
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  ImageTokens img_;
};

}  // namespace phantom::data
