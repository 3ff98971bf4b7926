// Is a candidate answer correct? The check that turns a model's sampled answers into rejected answers and that
// drops a written "wrong" answer that is in fact right. Rules, in order, by what the reference answer is:
//   - an option of the question (the question lists "A. ...", "B. ..." lines; the reference is a letter or an
//     option's text): correct when the candidate names the same option (the benchmarks' own letter extraction);
//   - a number: correct when the candidate's first number equals it (relative tolerance 1e-6; "%" and thousands
//     commas ignored);
//   - text: correct when equal after normalisation (below), or when the candidate contains the whole normalised
//     reference as words ("It is a sneaker." for "sneaker").
// Where unsure the check leans to "correct": a right answer trained as rejected teaches the model against the
// truth, while a wrong answer wrongly kept out only costs one triple.
#pragma once

#include <string>
#include <vector>

namespace phantom::triples {

// Lower case, punctuation to spaces, the articles a/an/the dropped, runs of spaces made one, ends trimmed:
// "The Sneaker." and "sneaker" normalise to the same text.
std::string normalize_answer(const std::string& text);

// The options a question lists, one per line as "A. text", "A) text", "(A) text" or "A: text", consecutive
// letters from A; empty when the question has none.
std::vector<std::string> question_options(const std::string& question);

struct Verdict {
  bool correct = false;
  std::string rule;  // "option", "number", "text" (which rule decided)
};

Verdict verify_answer(const std::string& candidate, const std::string& reference, const std::string& question);

}  // namespace phantom::triples
