#include "data/chat_template.h"

#include <algorithm>
#include <stdexcept>

namespace phantom::data {

ChatTemplate ChatTemplate::by_name(const std::string& name) {
  if (name == "chatml")
    return {"chatml", "<|im_start|>user\n", "<|im_end|>", "<|im_start|>assistant\n", "<|im_end|>", "<|endoftext|>"};
  if (name == "phi3") return {"phi3", "<|user|>\n", "<|end|>", "<|assistant|>\n", "<|end|>", "<|endoftext|>"};
  throw std::runtime_error("unknown chat template '" + name + "' (expected chatml or phi3)");
}

ChatTemplate ChatTemplate::resolve(const std::string& setting, const std::string& family) {
  if (setting != "auto") return by_name(setting);
  return by_name(family == "phi3" ? "phi3" : "chatml");
}

int32_t ChatTemplate::pad_id(const Tokenizer& tok) const {
  if (auto id = tok.token_to_id(pad_token)) return *id;
  if (auto id = tok.token_to_id(assistant_end)) return *id;
  throw std::runtime_error("the tokenizer has neither '" + pad_token + "' nor '" + assistant_end + "' (chat template " +
                           name + ")");
}

ImageTokens ImageTokens::from_tokenizer(const Tokenizer& tok, int64_t tokens_per_tile) {
  auto need = [&](const char* s) {
    auto id = tok.token_to_id(s);
    if (!id) throw std::runtime_error(std::string("the tokenizer has no '") + s + "' token (needed for images)");
    return *id;
  };
  ImageTokens t;
  t.img_start = need("<img>");
  t.img_context = need("<IMG_CONTEXT>");
  t.img_end = need("</img>");
  t.tokens_per_tile = tokens_per_tile;
  return t;
}

static void append(std::vector<int32_t>& a, const std::vector<int32_t>& b) { a.insert(a.end(), b.begin(), b.end()); }

void SampleEncoder::set_image_placement(const std::string& p) {
  if (!valid_image_placement(p))
    throw std::runtime_error("image placement '" + p + "' is unknown (expected prepend or prepend_newline)");
  placement_ = p;
}

std::vector<int32_t> SampleEncoder::user_turn(const std::string& q, const std::vector<int64_t>& tiles,
                                              size_t* next_image, bool first) const {
  // The text's placeholders go, with the newline that usually follows them ("<image>\n" in LLaVA files)...
  std::string text;
  for (size_t pos = 0;;) {
    const size_t p = q.find("<image>", pos);
    text += q.substr(pos, p == std::string::npos ? std::string::npos : p - pos);
    if (p == std::string::npos) break;
    pos = p + 7;
    if (pos < q.size() && q[pos] == '\n') ++pos;
  }
  // ...and every image comes first, by the one rule.
  if (first && !tiles.empty()) {
    std::string pre;
    for (size_t i = 0; i < tiles.size(); ++i) pre += placement_ == "prepend_newline" ? "<image>\n" : "<image>";
    text = pre + text;
  }
  // The turn is tokenised as one string with the image runs written out, as the official code tokenises its
  // prompt: a tokenizer whose first segment alone gets a prefix space (Metaspace "first") or that joins "user\n"
  // with the question (SentencePiece) gives the same ids only that way. The prompt is masked as a whole, so no
  // boundary inside it matters for the labels.
  const std::string start = tok_.id_to_token(img_.img_start), context = tok_.id_to_token(img_.img_context),
                    end = tok_.id_to_token(img_.img_end);
  std::string s = tmpl_.user_start;
  int64_t want_context = 0;
  for (size_t pos = 0;;) {
    const size_t p = text.find("<image>", pos);
    s.append(text, pos, p == std::string::npos ? std::string::npos : p - pos);
    if (p == std::string::npos) break;
    if (*next_image >= tiles.size()) throw std::runtime_error("more <image> placeholders than images");
    const int64_t n = img_.tokens_per_tile * tiles[(*next_image)++];
    s += start;
    for (int64_t k = 0; k < n; ++k) s += context;
    s += end;
    want_context += n;
    pos = p + 7;
  }
  s += tmpl_.user_end + tmpl_.assistant_start;
  auto ids = tok_.encode(s);
  if (std::count(ids.begin(), ids.end(), img_.img_context) != want_context)
    throw std::runtime_error("the tokenizer does not keep '" + context + "' atomic: image token count differs");
  return ids;
}

EncodedConversation SampleEncoder::conversation(const Sample& s, const std::vector<int64_t>& tiles) const {
  EncodedConversation out;
  size_t next_image = 0;
  for (size_t i = 0; i < s.turns.size(); i += 2) {
    auto prompt = user_turn(s.turns[i].text, tiles, &next_image, i == 0);
    append(out.ids, prompt);
    out.labels.insert(out.labels.end(), prompt.size(), kIgnore);
    if (i + 1 < s.turns.size()) {
      auto answer = tok_.encode(s.turns[i + 1].text);
      append(answer, tok_.encode(tmpl_.assistant_end));
      append(out.ids, answer);
      append(out.labels, answer);
    }
  }
  if (next_image != tiles.size()) throw std::runtime_error("fewer <image> placeholders than images");
  return out;
}

std::vector<int32_t> SampleEncoder::prompt(const std::string& question, const std::vector<int64_t>& tiles) const {
  // As the annotation readers: <image> placeholders, when the text has any, match the images one to one (the
  // images are placed by the one rule, so a surplus placeholder would otherwise vanish without a word).
  size_t placeholders = 0;
  for (size_t p = question.find("<image>"); p != std::string::npos; p = question.find("<image>", p + 7)) ++placeholders;
  if (placeholders != 0 && placeholders != tiles.size())
    throw std::runtime_error("image count mismatch: the prompt has " + std::to_string(placeholders) +
                             " <image> placeholders but " + std::to_string(tiles.size()) + " images");
  size_t next_image = 0;
  auto ids = user_turn(question, tiles, &next_image, true);
  if (next_image != tiles.size()) throw std::runtime_error("fewer <image> placeholders than images");
  return ids;
}

EncodedPreference SampleEncoder::preference(const Sample& s, const std::vector<int64_t>& tiles) const {
  EncodedPreference out;
  out.prompt = prompt(s.question, tiles);
  auto answer = [&](const std::string& a) {
    auto ids = tok_.encode(a);
    append(ids, tok_.encode(tmpl_.assistant_end));
    return ids;
  };
  out.answers.push_back(answer(s.chosen));
  for (auto& r : s.rejected) out.answers.push_back(answer(r));
  return out;
}

}  // namespace phantom::data
