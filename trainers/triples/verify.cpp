#include "trainers/triples/verify.h"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <map>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <regex>
#include <sstream>

#include "trainers/eval/benchmarks.h"

namespace phantom::triples {

std::string normalize_answer(const std::string& text) {
  std::string s;
  for (unsigned char c : text) s += std::ispunct(c) ? ' ' : static_cast<char>(std::tolower(c));
  std::istringstream words(s);
  std::string w, out;
  while (words >> w) {
    if (w == "a" || w == "an" || w == "the") continue;
    out += (out.empty() ? "" : " ") + w;
  }
  return out;
}

std::vector<std::string> question_options(const std::string& question) {
  static const std::regex line_re(R"(^\s*\(?([A-Z])[\.\):]\s+(.+?)\s*$)");
  std::vector<std::string> options;
  std::istringstream lines(question);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, line_re)) continue;
    const char letter = m[1].str()[0];
    if (letter == 'A') options.clear();  // a new list starts (an earlier "A." line was prose)
    if (letter != static_cast<char>('A' + options.size())) continue;
    options.push_back(m[2].str());
  }
  return options.size() >= 2 ? options : std::vector<std::string>{};
}

namespace {

// The first number of a text: "1,234.5", "-3", "45%" -> 1234.5, -3, 45.
std::optional<double> first_number(const std::string& text) {
  static const std::regex num_re(R"([-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+)");
  std::smatch m;
  if (!std::regex_search(text, m, num_re)) return std::nullopt;
  std::string digits;
  for (char c : m.str())
    if (c != ',') digits += c;
  return std::strtod(digits.c_str(), nullptr);
}

// The whole text is one number (perhaps with a unit-free "%" or a final period): the reference of a numeric answer.
bool is_number(const std::string& text) {
  static const std::regex whole(R"(^\s*[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s*%?\s*\.?\s*$)");
  return std::regex_match(text, whole);
}

bool contains_words(const std::string& haystack, const std::string& needle) {
  if (needle.empty()) return false;
  const std::string h = " " + haystack + " ", n = " " + needle + " ";
  return h.find(n) != std::string::npos;
}

// Function words that carry no answer: "This is a sandal." says "sandal". Negations ("not", "no") are kept.
const std::set<std::string>& function_words() {
  static const std::set<std::string> w = {"is", "are", "was", "were", "be", "it", "its", "this", "that", "these",
                                          "those", "there", "of", "to"};
  return w;
}

std::set<std::string> words_of(const std::string& normalised) {
  std::istringstream in(normalised);
  std::set<std::string> out;
  for (std::string w; in >> w;) out.insert(w);
  return out;
}

std::set<std::string> content_words(const std::string& normalised) {
  std::set<std::string> out;
  for (const auto& w : words_of(normalised))
    if (!function_words().count(w)) out.insert(w);
  return out;
}

// The words one side has and the other lacks are all framing: the same content, worded otherwise.
bool differ_only_in_framing(const std::set<std::string>& a, const std::set<std::string>& b, const FramingWords* framing) {
  std::vector<std::string> diff;
  std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(diff));
  for (const auto& w : diff)
    if (!framing || !framing->words.count(w)) return false;
  return true;
}

// A negation among the words ("isn't" normalises to "isn t").
bool negated(const std::set<std::string>& words) {
  static const std::set<std::string> neg = {"not", "no", "never", "none", "nothing", "neither", "nor", "cannot",
                                            "without", "isn", "aren", "wasn", "weren", "don", "doesn", "didn",
                                            "couldn", "wouldn", "shouldn", "hasn", "haven", "hadn"};
  for (const auto& w : words)
    if (neg.count(w)) return true;
  return false;
}

bool includes(const std::set<std::string>& big, const std::set<std::string>& small) {
  return !small.empty() && std::includes(big.begin(), big.end(), small.begin(), small.end());
}

// A reference the text rule judges (not an option of its question, not a number).
bool is_text_reference(const std::string& reference, const std::string& question) {
  const auto options = question_options(question);
  if (!options.empty() && eval::extract_option(reference, options)) return false;
  return !is_number(reference);
}

}  // namespace

FramingWords framing_words(const std::vector<std::pair<std::string, std::string>>& question_reference_pairs,
                           double share, int64_t min_references) {
  FramingWords f;
  std::map<std::string, int64_t> df;
  for (const auto& [question, reference] : question_reference_pairs) {
    if (!is_text_reference(reference, question)) continue;
    ++f.text_references;
    for (const auto& w : words_of(normalize_answer(reference))) ++df[w];
  }
  if (f.text_references < min_references) return f;
  for (const auto& [w, n] : df)
    if (static_cast<double>(n) >= share * static_cast<double>(f.text_references)) f.words.insert(w);
  return f;
}

Verdict verify_answer(const std::string& candidate, const std::string& reference, const std::string& question,
                      const FramingWords* framing) {
  const auto options = question_options(question);
  if (!options.empty()) {
    if (auto ref = eval::extract_option(reference, options)) {
      const auto got = eval::extract_option(candidate, options);
      return {got && *got == *ref, "option"};
    }
  }
  if (is_number(reference)) {
    const auto ref = first_number(reference), got = first_number(candidate);
    const bool same = got && std::fabs(*got - *ref) <= 1e-6 * std::max(1.0, std::fabs(*ref));
    return {same, "number"};
  }
  const std::string c = normalize_answer(candidate), r = normalize_answer(reference);
  if (r.empty()) return {false, "text"};
  if (c == r || contains_words(c, r)) return {true, "text"};
  const auto cw = content_words(c), rw = content_words(r);
  if (negated(cw) != negated(rw)) return {false, "text"};  // "It is not a sandal." says the opposite
  return {differ_only_in_framing(cw, rw, framing) || includes(cw, rw) || includes(rw, cw), "text"};
}

}  // namespace phantom::triples
