#include "data/chat_template.h"

#include <algorithm>
#include <stdexcept>

#include "phantom/util/log.h"

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

void SampleEncoder::set_answer_tokenization(const std::string& m) {
  if (!valid_answer_tokenization(m))
    throw std::runtime_error("answer tokenization '" + m + "' is unknown (expected in_context or per_segment)");
  answer_mode_ = m;
}

std::string SampleEncoder::counts_summary() const {
  const auto& n = *counts_;
  std::string s = "answer tokens " + answer_mode_ + " (data.answer_tokenization): " + std::to_string(n.answers) + " answers";
  if (answer_mode_ == "in_context") s += ", " + std::to_string(n.straddling) + " with a first token straddling the prompt's end (supervised)";
  if (n.preference_questions > 0)
    s += ", " + std::to_string(n.unshared_prompts) + " of " + std::to_string(n.preference_questions) +
         " preference questions with unshared prompt ids (laid out one row per answer)";
  return s;
}

int64_t EncodedPreference::row_length(bool shared_prefix) const {
  int64_t len = 0;
  if (shared_prefix && shared()) {
    len = static_cast<int64_t>(prompt.size());
    for (auto& a : answers) len += static_cast<int64_t>(a.size());
    return len;
  }
  for (size_t a = 0; a < answers.size(); ++a) len = std::max(len, static_cast<int64_t>(prompt_of(a).size() + answers[a].size()));
  return len;
}

void SampleEncoder::set_multi_image(const std::string& r) {
  if (!valid_multi_image(r)) throw std::runtime_error("multi_image rule '" + r + "' is unknown (expected interleaved or first_turn)");
  multi_image_ = r;
}

namespace {
bool has_placeholder(const std::string& s) { return s.find("<image>") != std::string::npos; }
bool sample_has_placeholder(const Sample& s) {
  bool any = has_placeholder(s.question);
  for (auto& t : s.turns) any = any || has_placeholder(t.text);
  for (auto& t : s.context) any = any || has_placeholder(t.text);
  return any;
}
// Removes every <image> of `q` that `remove(offset, text kept so far)` picks, with the newline right after it; returns how many.
template <class Pick>
size_t strip_placeholders(const std::string& q, std::string* text, Pick remove) {
  size_t n = 0;
  for (size_t pos = 0;;) {
    const size_t p = q.find("<image>", pos);
    text->append(q, pos, p == std::string::npos ? std::string::npos : p - pos);
    if (p == std::string::npos) break;
    pos = p + 7;
    if (!remove(p, *text)) {
      *text += "<image>";
      continue;
    }
    if (pos < q.size() && q[pos] == '\n') ++pos;
    ++n;
  }
  return n;
}
}  // namespace

std::string SampleEncoder::user_turn_text(const std::string& q, const std::vector<int64_t>& tiles, size_t* next_image,
                                          bool first, bool placeholders, int64_t* context) const {
  // Which images start this turn (written by image_placement) and which stay where the text has them.
  std::string text;
  size_t leading = 0;
  if (multi_image_ == "first_turn" || !placeholders) {
    // Every placeholder goes, with the newline that usually follows it ("<image>\n" in LLaVA files), and every
    // image starts the first turn.
    strip_placeholders(q, &text, [](size_t, const std::string&) { return true; });
    if (first) leading = tiles.size();
  } else {
    // interleaved: the placeholders before any other text of the turn start it; the others stay as written.
    leading = strip_placeholders(q, &text, [](size_t, const std::string& so_far) { return so_far.empty(); });
  }
  std::string pre;
  for (size_t i = 0; i < leading; ++i) pre += placement_ == "prepend_newline" ? "<image>\n" : "<image>";
  text = pre + text;
  // The turn is tokenised as one string with the image runs written out, as the official code tokenises its
  // prompt: a tokenizer whose first segment alone gets a prefix space (Metaspace "first") or that joins "user\n"
  // with the question (SentencePiece) gives the same ids only that way.
  const std::string start = tok_.id_to_token(img_.img_start), ctx = tok_.id_to_token(img_.img_context),
                    end = tok_.id_to_token(img_.img_end);
  std::string s = tmpl_.user_start;
  for (size_t pos = 0;;) {
    const size_t p = text.find("<image>", pos);
    s.append(text, pos, p == std::string::npos ? std::string::npos : p - pos);
    if (p == std::string::npos) break;
    if (*next_image >= tiles.size()) throw std::runtime_error("more <image> placeholders than images");
    const int64_t n = img_.tokens_per_tile * tiles[(*next_image)++];
    s += start;
    for (int64_t k = 0; k < n; ++k) s += ctx;
    s += end;
    *context += n;
    pos = p + 7;
  }
  return s + tmpl_.user_end + tmpl_.assistant_start;
}

std::vector<int32_t> SampleEncoder::encode_checked(const std::string& text, int64_t context,
                                                   std::vector<TokenSpan>* spans) const {
  auto ids = tok_.encode_with_spans(text, spans);
  if (std::count(ids.begin(), ids.end(), img_.img_context) != context)
    throw std::runtime_error("the tokenizer does not keep '" + tok_.id_to_token(img_.img_context) +
                             "' atomic: image token count differs");
  return ids;
}

namespace {
// Index of the first token of the answer that begins at byte `prompt_end`: the first one that ends after it, or
// an empty one at or after it (SentencePiece gives the dummy-prefix `▁` and the leading byte-fallback pieces of a
// character empty spans where the character begins: they belong to the text after them).
size_t first_answer_token(const std::vector<TokenSpan>& spans, size_t from, size_t prompt_end) {
  size_t k = from;
  while (k < spans.size() && spans[k].end <= prompt_end && !(spans[k].begin == spans[k].end && spans[k].begin >= prompt_end)) ++k;
  return k;
}
}  // namespace

EncodedConversation SampleEncoder::conversation(const Sample& s, const std::vector<int64_t>& tiles) const {
  return answer_mode_ == "per_segment" ? conversation_per_segment(s, tiles) : conversation_in_context(s, tiles);
}

EncodedConversation SampleEncoder::conversation_per_segment(const Sample& s, const std::vector<int64_t>& tiles) const {
  EncodedConversation out;
  size_t next_image = 0;
  const bool placeholders = sample_has_placeholder(s);
  for (size_t i = 0; i < s.turns.size(); i += 2) {
    int64_t context = 0;  // counted by user_turn_text: the text first, then the check (argument order is unspecified)
    const std::string turn = user_turn_text(s.turns[i].text, tiles, &next_image, i == 0, placeholders, &context);
    auto prompt = encode_checked(turn, context, nullptr);
    append(out.ids, prompt);
    out.labels.insert(out.labels.end(), prompt.size(), kIgnore);
    if (i + 1 < s.turns.size()) {
      auto answer = tok_.encode(s.turns[i + 1].text);
      append(answer, tok_.encode(tmpl_.assistant_end));
      append(out.ids, answer);
      append(out.labels, answer);
      ++counts_->answers;
    }
  }
  if (next_image != tiles.size()) throw std::runtime_error("fewer <image> placeholders than images");
  return out;
}

// The whole conversation as one string; each answer's supervised tokens: from the first token ending after its
// prompt to the last one beginning before the end of its end token.
EncodedConversation SampleEncoder::conversation_in_context(const Sample& s, const std::vector<int64_t>& tiles) const {
  std::string text;
  std::vector<std::pair<size_t, size_t>> answers;  // [prompt end, answer end) in bytes of text
  size_t next_image = 0;
  int64_t context = 0;
  const bool placeholders = sample_has_placeholder(s);
  for (size_t i = 0; i < s.turns.size(); i += 2) {
    text += user_turn_text(s.turns[i].text, tiles, &next_image, i == 0, placeholders, &context);
    if (i + 1 < s.turns.size()) {
      const size_t p = text.size();
      text += s.turns[i + 1].text + tmpl_.assistant_end;
      answers.emplace_back(p, text.size());
    }
  }
  if (next_image != tiles.size()) throw std::runtime_error("fewer <image> placeholders than images");
  std::vector<TokenSpan> spans;
  EncodedConversation out;
  out.ids = encode_checked(text, context, &spans);
  out.labels.assign(out.ids.size(), kIgnore);
  size_t k = 0;
  for (auto [prompt_end, answer_end] : answers) {
    k = first_answer_token(spans, k, prompt_end);
    if (k < spans.size() && spans[k].begin < prompt_end) ++counts_->straddling;
    for (; k < spans.size() && spans[k].begin < answer_end; ++k) out.labels[k] = out.ids[k];
    ++counts_->answers;
  }
  return out;
}

std::vector<int32_t> SampleEncoder::prompt(const std::string& question, const std::vector<int64_t>& tiles) const {
  // As the annotation readers: <image> placeholders, when the text has any, match the images one to one (a
  // surplus placeholder would otherwise vanish without a word under first_turn).
  size_t placeholders = 0;
  for (size_t p = question.find("<image>"); p != std::string::npos; p = question.find("<image>", p + 7)) ++placeholders;
  if (placeholders != 0 && placeholders != tiles.size())
    throw std::runtime_error("image count mismatch: the prompt has " + std::to_string(placeholders) +
                             " <image> placeholders but " + std::to_string(tiles.size()) + " images");
  size_t next_image = 0;
  int64_t context = 0;
  const std::string text = user_turn_text(question, tiles, &next_image, true, placeholders > 0, &context);
  if (next_image != tiles.size()) throw std::runtime_error("fewer <image> placeholders than images");
  return encode_checked(text, context, nullptr);
}

// Context turns, each user turn then its answer and end token, then the question's turn: as a conversation writes
// them, so a multi-turn preference row's prompt is its conversation's prompt up to the last answer.
std::string SampleEncoder::preference_prompt_text(const Sample& s, const std::vector<int64_t>& tiles, int64_t* context) const {
  const bool placeholders = sample_has_placeholder(s);
  size_t next_image = 0;
  std::string text;
  for (size_t i = 0; i + 1 < s.context.size(); i += 2)
    text += user_turn_text(s.context[i].text, tiles, &next_image, i == 0, placeholders, context) +
            s.context[i + 1].text + tmpl_.assistant_end;
  text += user_turn_text(s.question, tiles, &next_image, s.context.empty(), placeholders, context);
  if (next_image != tiles.size()) throw std::runtime_error("fewer <image> placeholders than images");
  return text;
}

// per_segment: each user turn, and each context answer with its end token, tokenised on its own (as
// conversation_per_segment lays a conversation out).
std::vector<int32_t> SampleEncoder::preference_prompt_per_segment(const Sample& s, const std::vector<int64_t>& tiles) const {
  const bool placeholders = sample_has_placeholder(s);
  size_t next_image = 0;
  std::vector<int32_t> out;
  auto user = [&](const std::string& q, bool first) {
    int64_t context = 0;
    const std::string turn = user_turn_text(q, tiles, &next_image, first, placeholders, &context);
    append(out, encode_checked(turn, context, nullptr));
  };
  for (size_t i = 0; i + 1 < s.context.size(); i += 2) {
    user(s.context[i].text, i == 0);
    append(out, tok_.encode(s.context[i + 1].text));
    append(out, tok_.encode(tmpl_.assistant_end));
  }
  user(s.question, s.context.empty());
  if (next_image != tiles.size()) throw std::runtime_error("fewer <image> placeholders than images");
  return out;
}

EncodedPreference SampleEncoder::preference(const Sample& s, const std::vector<int64_t>& tiles) const {
  ++counts_->preference_questions;
  if (answer_mode_ != "per_segment") return preference_in_context(s, tiles);
  EncodedPreference out;
  out.prompt = preference_prompt_per_segment(s, tiles);
  auto answer = [&](const std::string& a) {
    auto ids = tok_.encode(a);
    append(ids, tok_.encode(tmpl_.assistant_end));
    ++counts_->answers;
    return ids;
  };
  out.answers.push_back(answer(s.chosen));
  for (auto& r : s.rejected) out.answers.push_back(answer(r));
  return out;
}

// prompt + answer + end token as one string per answer; the prompt ids are those before the answer's first
// supervised token. Shared by every answer when they are equal, else each answer keeps its own (logged).
EncodedPreference SampleEncoder::preference_in_context(const Sample& s, const std::vector<int64_t>& tiles) const {
  int64_t context = 0;
  const std::string prompt_text = preference_prompt_text(s, tiles, &context);
  std::vector<std::string> answers{s.chosen};
  answers.insert(answers.end(), s.rejected.begin(), s.rejected.end());
  std::vector<std::vector<int32_t>> prompts;
  EncodedPreference out;
  std::vector<TokenSpan> spans;
  for (auto& a : answers) {
    auto ids = encode_checked(prompt_text + a + tmpl_.assistant_end, context, &spans);
    const size_t k = first_answer_token(spans, 0, prompt_text.size());
    if (k < spans.size() && spans[k].begin < prompt_text.size()) ++counts_->straddling;
    ++counts_->answers;
    prompts.emplace_back(ids.begin(), ids.begin() + static_cast<long>(k));
    out.answers.emplace_back(ids.begin() + static_cast<long>(k), ids.end());
  }
  if (std::all_of(prompts.begin(), prompts.end(), [&](const std::vector<int32_t>& p) { return p == prompts[0]; })) {
    out.prompt = std::move(prompts[0]);
    return out;
  }
  if (const int64_t n = ++counts_->unshared_prompts; n <= 5)
    log::warn(s.where + ": the chosen and rejected answers leave different prompt ids (in-context tokenisation); "
              "this question is laid out one row per answer" + (n == 5 ? " (further cases are only counted)" : ""));
  out.own_prompts = std::move(prompts);
  return out;
}

}  // namespace phantom::data
