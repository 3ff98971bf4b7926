// An answer printed while it is generated (`phantom generate` without --input), ending byte for byte as the text
// answer_questions returns for the same tokens: the decode of every token, special tokens skipped.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/tokenizers/tokenizer.h"

namespace phantom::eval {

class AnswerStream {
 public:
  AnswerStream(const data::Tokenizer& tok, std::function<void(const std::string&)> out) : tok_(tok), out_(std::move(out)) {}
  // One generated token. Ids the tokenizer does not know (padded embedding rows) are no text, as in
  // answer_questions.
  void add(int64_t id);
  // Prints whatever is still held back. Call once, after the last token.
  void finish();
  const std::string& printed() const { return printed_; }

 private:
  void emit(bool last);
  const data::Tokenizer& tok_;
  std::function<void(const std::string&)> out_;
  std::vector<int32_t> ids_;
  std::string printed_;
};

}  // namespace phantom::eval
