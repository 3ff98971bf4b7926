#include "trainers/triples/verify.h"

#include <cctype>
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

}  // namespace

Verdict verify_answer(const std::string& candidate, const std::string& reference, const std::string& question) {
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
  return {!r.empty() && (c == r || contains_words(c, r)), "text"};
}

}  // namespace phantom::triples
