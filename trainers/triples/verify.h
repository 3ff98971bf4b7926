// Is a candidate answer correct? The check that turns a model's sampled answers into rejected answers and that
// drops a written "wrong" answer that is in fact right. Rules, in order, by what the reference answer is:
//   - an option of the question (the question lists "A. ...", "B. ..." lines; the reference is a letter or an
//     option's text): correct when the candidate names the same option (the benchmarks' own letter extraction);
//   - a number: correct when the candidate's first number equals it (relative tolerance 1e-6; "%" and thousands
//     commas ignored);
//   - text: correct when equal after normalisation (below), when the candidate contains the whole normalised
//     reference as words ("It is a sneaker." for "sneaker"), when the content words of one contain all those of
//     the other, or when the words one has and the other lacks are all the file's framing words (framing_words
//     below). Content words are the normalised words less a few function words ("is", "it", "this", ...):
//     "The image shows a sandal." says what "This is a sandal." says, and on the demo's file "The photo shows a
//     sandal." what "The image shows a sandal." says; "The photo shows a trouser." does not say "It is a dress.",
//     nor "It is not a sandal." "It is a sandal." (a negation in one and not the other is wrong).
// Where unsure the check leans to "correct": a right answer trained as rejected teaches the model against the
// truth, while a wrong answer wrongly kept out only costs one triple.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace phantom::triples {

// Lower case, punctuation to spaces, the articles a/an/the dropped, runs of spaces made one, ends trimmed:
// "The Sneaker." and "sneaker" normalise to the same text.
std::string normalize_answer(const std::string& text);

// The options a question lists, one per line as "A. text", "A) text", "(A) text" or "A: text", consecutive
// letters from A; empty when the question has none.
std::vector<std::string> question_options(const std::string& question);

// Words that the file's text references share whatever their answer: on a file whose answers are written as
// "It is a X." / "The image shows a X.", the words "it", "image", "shows". A word is framing when it appears in at
// least `share` of the text references (references that are an option or a number are not counted), and only on
// files with at least `min_references` of them (a small file gives no statistics). A word that is an answer in its
// own right and that frequent (one class in 5) becomes framing too: two such answers are then taken for the same one,
// the check leans further to "correct", which costs triples, never a right answer trained as wrong.
struct FramingWords {
  std::set<std::string> words;
  int64_t text_references = 0;
};
FramingWords framing_words(const std::vector<std::pair<std::string, std::string>>& question_reference_pairs,
                           double share = 0.15, int64_t min_references = 20);

struct Verdict {
  bool correct = false;
  std::string rule;  // "option", "number", "text" (which rule decided)
};

Verdict verify_answer(const std::string& candidate, const std::string& reference, const std::string& question,
                      const FramingWords* framing = nullptr);

}  // namespace phantom::triples
