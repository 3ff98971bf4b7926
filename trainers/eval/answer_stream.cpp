#include "trainers/eval/answer_stream.h"

namespace phantom::eval {

namespace {

// U+FFFD, what a decoder writes for the bytes of a character whose last bytes are still to come.
constexpr char kReplacement[] = "\xEF\xBF\xBD";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

void AnswerStream::add(int64_t id) {
  if (id < 0 || id >= tok_.vocab_size()) return;
  ids_.push_back(static_cast<int32_t>(id));
  emit(false);
}

void AnswerStream::finish() { emit(true); }

// Prints the part of the decoded text that the next tokens cannot change: while generating, a trailing U+FFFD may
// be a character cut between tokens, so it waits. Whatever was printed is a prefix of every later decode (the
// decoders here only append), so the printed text ends as the final decode.
void AnswerStream::emit(bool last) {
  std::string text = tok_.decode(ids_, /*skip_special=*/true);
  if (!last)
    while (ends_with(text, kReplacement)) text.resize(text.size() - 3);
  if (text.size() <= printed_.size() || text.compare(0, printed_.size(), printed_) != 0) return;
  out_(text.substr(printed_.size()));
  printed_ = std::move(text);
}

}  // namespace phantom::eval
