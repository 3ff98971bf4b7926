// Chat templates (docs/paper.md, "Data") and the encoding of samples into token ids and label masks. Two ways to
// tokenise an answer (data.answer_tokenization, docs/data.md "Chat templates and masks"):
//   in_context (default): prompt + answer + end token as ONE string, as the official Phantom code
//     (make_instruction_and_label) and InternVL's trainer tokenise it, so the ids are the ones the released
//     checkpoints were trained on; supervision starts at the first token that ends after the prompt's end (token
//     spans from the tokenizer), so a token joining the prompt's last text and the answer's first is supervised
//     and counted ("straddling"). Every assistant turn of a conversation the same way.
//   per_segment: each user turn and each answer + end token tokenised on its own and concatenated: the supervised
//     span is exactly the answer + end token, but its first ids can differ from the official ones.
// The user turn (template, image runs, question) is one string either way.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
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
// token): answers[0] is the chosen one, then every rejected answer. In context, the prompt is the ids before an
// answer's first supervised token; when the answers leave different prompt ids (a straddling token, or a merge the
// answer's text changed), each answer keeps its own prompt and the question is laid out one row per answer even in
// a shared-prefix batch (the naive layout for that question).
struct EncodedPreference {
  std::vector<int32_t> prompt;                    // shared by every answer (own_prompts empty)
  std::vector<std::vector<int32_t>> answers;
  std::vector<std::vector<int32_t>> own_prompts;  // else: answer a's prompt
  bool shared() const { return own_prompts.empty(); }
  const std::vector<int32_t>& prompt_of(size_t a) const { return shared() ? prompt : own_prompts[a]; }
  // Tokens of the longest row: prompt + every answer (shared prefix) or the longest prompt + answer.
  int64_t row_length(bool shared_prefix) const;
};

// What the encoder met, over every sample it encoded (thread-safe counters; `data check` and the trainer report them).
struct EncodeCounts {
  std::atomic<int64_t> answers{0};            // answers encoded (each assistant turn, each chosen/rejected answer)
  std::atomic<int64_t> straddling{0};         // of which the first supervised token begins inside the prompt
  std::atomic<int64_t> preference_questions{0};
  std::atomic<int64_t> unshared_prompts{0};   // of which the answers' prompt ids differ: one row per answer
};

class SampleEncoder {
 public:
  SampleEncoder(const Tokenizer& tok, ChatTemplate tmpl, ImageTokens img) : tok_(tok), tmpl_(std::move(tmpl)), img_(img) {}

  // in_context (default) | per_segment (above).
  static bool valid_answer_tokenization(const std::string& m) { return m == "in_context" || m == "per_segment"; }
  void set_answer_tokenization(const std::string& m);
  const std::string& answer_tokenization() const { return answer_mode_; }
  const EncodeCounts& counts() const { return *counts_; }
  // "answer tokens in_context: 1953 answers, 134 with a straddling first token (supervised), 44 of 300 preference
  // questions with unshared prompt ids (one row per answer)".
  std::string counts_summary() const;

  // `tiles[i]` = tile count of the sample's i-th image, placed by the image placement rule (below).
  EncodedConversation conversation(const Sample& s, const std::vector<int64_t>& tiles) const;
  EncodedPreference preference(const Sample& s, const std::vector<int64_t>& tiles) const;
  // Prompt of an evaluation question (no answer); <image> placeholders, when it has any, match the images.
  std::vector<int32_t> prompt(const std::string& question, const std::vector<int64_t>& tiles) const;

  // Where the images go, the same rules for every format, `generate`, `eval` and the trainer's benchmark. Two
  // settings, both saved with an exported model (config.json phantom_prompt) and used when it is loaded:
  //   multi_image, which turn and where in it:
  //     interleaved (default): each <image> stays where the text writes it (InternVL's convention), in any user
  //       turn; the placeholders a user turn starts with, and every image of a sample whose text has no
  //       placeholder (at the start of the first user turn), are written by image_placement.
  //     first_turn: the text's placeholders are removed and every image goes to the start of the first user turn.
  //   image_placement, how images at the start of a turn join the text: "<image>" (prepend: the official Phantom
  //     prompt) or "<image>\n" (prepend_newline: LLaVA's); a placeholder's own newline is dropped there.
  // A sample with one image at the front (every benchmark prompt) gets the same ids under both multi_image rules.
  static bool valid_image_placement(const std::string& p) { return p == "prepend" || p == "prepend_newline"; }
  void set_image_placement(const std::string& p);
  const std::string& image_placement() const { return placement_; }
  static bool valid_multi_image(const std::string& r) { return r == "interleaved" || r == "first_turn"; }
  void set_multi_image(const std::string& r);
  const std::string& multi_image() const { return multi_image_; }

  const ChatTemplate& chat_template() const { return tmpl_; }
  const ImageTokens& image_tokens() const { return img_; }

 private:
  // The user turn as text (template strings, image runs written out, question, assistant start); adds its image
  // context tokens to *context.
  // `placeholders`: whether the sample's text has any <image> (else every image goes to the first turn).
  std::string user_turn_text(const std::string& q, const std::vector<int64_t>& tiles, size_t* next_image, bool first,
                             bool placeholders, int64_t* context) const;
  // The text of a preference sample's prompt: its context turns (user turn, answer, end token) and its question.
  std::string preference_prompt_text(const Sample& s, const std::vector<int64_t>& tiles, int64_t* context) const;
  std::vector<int32_t> preference_prompt_per_segment(const Sample& s, const std::vector<int64_t>& tiles) const;
  std::vector<int32_t> encode_checked(const std::string& text, int64_t context, std::vector<TokenSpan>* spans) const;
  EncodedConversation conversation_per_segment(const Sample& s, const std::vector<int64_t>& tiles) const;
  EncodedConversation conversation_in_context(const Sample& s, const std::vector<int64_t>& tiles) const;
  EncodedPreference preference_in_context(const Sample& s, const std::vector<int64_t>& tiles) const;
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  ImageTokens img_;
  std::string placement_ = "prepend";
  std::string multi_image_ = "interleaved";
  std::string answer_mode_ = "in_context";
  std::shared_ptr<EncodeCounts> counts_ = std::make_shared<EncodeCounts>();
};

}  // namespace phantom::data
