#include "data/chat_template.h"

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

std::vector<int32_t> SampleEncoder::text_with_images(const std::string& text, const std::vector<int64_t>& tiles,
                                                     size_t* next_image) const {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (true) {
    const size_t p = text.find("<image>", pos);
    append(ids, tok_.encode(text.substr(pos, p == std::string::npos ? std::string::npos : p - pos)));
    if (p == std::string::npos) break;
    if (*next_image >= tiles.size()) throw std::runtime_error("more <image> placeholders than images");
    ids.push_back(img_.img_start);
    ids.insert(ids.end(), static_cast<size_t>(img_.tokens_per_tile * tiles[(*next_image)++]), img_.img_context);
    ids.push_back(img_.img_end);
    pos = p + 7;
  }
  return ids;
}

std::vector<int32_t> SampleEncoder::user_turn(const std::string& q, const std::vector<int64_t>& tiles,
                                              size_t* next_image, bool first) const {
  std::string text = q;
  if (first && !tiles.empty() && text.find("<image>") == std::string::npos) {
    std::string pre;
    for (size_t i = 0; i < tiles.size(); ++i) pre += "<image>";
    text = pre + text;
  }
  std::vector<int32_t> ids = tok_.encode(tmpl_.user_start);
  append(ids, text_with_images(text, tiles, next_image));
  append(ids, tok_.encode(tmpl_.user_end + tmpl_.assistant_start));
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
