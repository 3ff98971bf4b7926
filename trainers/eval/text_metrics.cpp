// The text scorers of VisualWebBench and BLINK, matching the Python they are published with: the `rouge` package's
// ROUGE-1/2/L (sets of words, exclusive mode), VisualWebBench's choice parse, BLINK's "(x)" parse, and Python's
// list formatting for the prompts. tests/test_benchmarks_parquet_sets.cpp checks them against the package itself.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "trainers/eval/benchmarks.h"

namespace phantom::eval {

namespace {

using Words = std::vector<std::string>;

// str.split(sep) for a one-character separator: empty pieces kept.
Words split_on(const std::string& s, char sep) {
  Words out;
  size_t b = 0;
  for (;;) {
    const size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) return out;
    b = e + 1;
  }
}

// " ".join(s.split()): runs of ASCII whitespace collapsed, ends trimmed.
std::string squash(const std::string& s) {
  std::string out, word;
  auto flush = [&] {
    if (word.empty()) return;
    if (!out.empty()) out += ' ';
    out += word;
    word.clear();
  };
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') flush();
    else word += c;
  }
  flush();
  return out;
}

// The package's sentence split: pieces between '.', empty pieces dropped, each whitespace-squashed (so a piece of
// only spaces survives as "").
Words sentences(const std::string& text) {
  Words out;
  for (const auto& piece : split_on(text, '.'))
    if (!piece.empty()) out.push_back(squash(piece));
  return out;
}

Words words_of(const Words& sents) {
  Words w;
  for (const auto& s : sents)
    for (auto& x : split_on(s, ' ')) w.push_back(std::move(x));
  return w;
}

double f_score(double p, double r) { return 2.0 * ((p * r) / (p + r + 1e-8)); }

double rouge_n(const Words& hyp, const Words& ref, size_t n) {
  auto grams = [n](const Words& w) {
    std::set<Words> g;
    for (size_t i = 0; i + n <= w.size(); ++i) g.insert(Words(w.begin() + long(i), w.begin() + long(i + n)));
    return g;
  };
  const auto h = grams(hyp), r = grams(ref);
  size_t overlap = 0;
  for (const auto& g : h) overlap += r.count(g);
  const double p = h.empty() ? 0.0 : double(overlap) / double(h.size());
  const double rc = r.empty() ? 0.0 : double(overlap) / double(r.size());
  return f_score(p, rc);
}

// The words of the LCS of x (reference) and y (hypothesis) that the package's reconstruction picks: from the end,
// a match steps diagonally, else up when table[i-1][j] > table[i][j-1], else left.
std::set<std::string> lcs_words(const Words& x, const Words& y) {
  const size_t n = x.size(), m = y.size();
  std::vector<std::vector<int>> t(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j)
      t[i][j] = x[i - 1] == y[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
  std::set<std::string> out;
  for (size_t i = n, j = m; i > 0 && j > 0;) {
    if (x[i - 1] == y[j - 1]) out.insert(x[i - 1]), --i, --j;
    else if (t[i - 1][j] > t[i][j - 1]) --i;
    else --j;
  }
  return out;
}

}  // namespace

std::optional<RougeF> rouge_f(const std::string& hypothesis, const std::string& reference) {
  const Words hs = sentences(hypothesis), rs = sentences(reference);
  if (hs.empty() || rs.empty()) return std::nullopt;  // the package raises "Hypothesis/Reference is empty"
  const Words hw = words_of(hs), rw = words_of(rs);
  RougeF f;
  f.rouge_1 = rouge_n(hw, rw, 1);
  f.rouge_2 = rouge_n(hw, rw, 2);
  // Summary-level ROUGE-L: the union, over reference and hypothesis sentences, of the LCS words, against the
  // numbers of distinct words.
  std::set<std::string> uni;
  for (const auto& r : rs)
    for (const auto& h : hs)
      for (auto& w : lcs_words(split_on(r, ' '), split_on(h, ' '))) uni.insert(std::move(w));
  const double m = double(std::set<std::string>(rw.begin(), rw.end()).size());
  const double n = double(std::set<std::string>(hw.begin(), hw.end()).size());
  f.rouge_l = f_score(double(uni.size()) / n, double(uni.size()) / m);
  return f;
}

std::optional<int> visualwebbench_choice(const std::string& response) {
  auto index = [](char c) -> std::optional<int> {
    if (c >= 'A' && c <= 'Z') return c - 'A';  // letters past H parse but never equal an answer
    return std::nullopt;
  };
  if (response.size() == 1) return index(char(std::toupper(static_cast<unsigned char>(response[0]))));
  if (response.empty()) return std::nullopt;
  if (response.size() >= 2 && response[0] >= 'A' && response[0] <= 'Z' && response[1] == '.') return index(response[0]);
  std::string s = " ";
  for (char c : response)
    if (std::string(",.!?;:'\"").find(c) == std::string::npos) s += c;
  s += ' ';
  // "(X)" anywhere wins over " X "; among several candidates the one occurring last.
  for (const char* fmt : {"(%c)", " %c "}) {
    long best_pos = -1;
    std::optional<int> best;
    for (char c = 'A'; c <= 'H'; ++c) {
      char pat[4];
      std::snprintf(pat, sizeof pat, fmt, c);
      const size_t at = s.rfind(pat);
      if (at != std::string::npos && long(at) > best_pos) best_pos = long(at), best = c - 'A';
    }
    if (best) return best;
  }
  return std::nullopt;
}

std::string blink_choice(const std::string& response) {
  for (size_t i = 0; i + 2 < response.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(response[i + 1]);
    if (response[i] == '(' && response[i + 2] == ')' && (std::isalnum(c) || c == '_')) return std::string(1, char(c));
  }
  return response;
}

std::string py_list_repr(const std::vector<double>& values) {
  std::string out = "[";
  for (size_t k = 0; k < values.size(); ++k) {
    if (k) out += ", ";
    // Python's repr: the shortest round-trip digits, fixed notation for exponents -4..15 (with ".0" when whole),
    // else d.ddde±XX.
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, values[k], std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    const size_t e = sci.find('e');
    std::string digits = sci.substr(0, e);
    const int exp = std::stoi(sci.substr(e + 1));
    const bool neg = !digits.empty() && digits[0] == '-';
    if (neg) digits.erase(0, 1);
    digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
    std::string txt;
    if (exp >= -4 && exp < 16) {
      if (exp < 0) {
        txt = "0." + std::string(size_t(-exp - 1), '0') + digits;
      } else {
        if (digits.size() <= size_t(exp) + 1) digits += std::string(size_t(exp) + 1 - digits.size(), '0');
        txt = digits.substr(0, size_t(exp) + 1) + "." + (digits.size() > size_t(exp) + 1 ? digits.substr(size_t(exp) + 1) : "0");
      }
    } else {
      char ebuf[16];
      std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
      txt = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "") + ebuf;
    }
    out += (neg ? "-" : "") + txt;
  }
  return out + "]";
}

std::string py_list_repr(const std::vector<std::string>& values) {
  std::string out = "[";
  for (size_t k = 0; k < values.size(); ++k) {
    if (k) out += ", ";
    const std::string& v = values[k];
    // repr() quotes with ' unless the text has ' and no ".
    const char q = v.find('\'') != std::string::npos && v.find('"') == std::string::npos ? '"' : '\'';
    out += q;
    for (char c : v) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (c == '\\' || c == q) out += '\\', out += c;
      else if (c == '\n') out += "\\n";
      else if (c == '\r') out += "\\r";
      else if (c == '\t') out += "\\t";
      else if (u < 0x20 || u == 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", u);
        out += hex;
      } else {
        out += c;  // non-ASCII kept as UTF-8, as repr keeps printable characters (it escapes e.g. U+00A0; we don't)
      }
    }
    out += q;
  }
  return out + "]";
}

}  // namespace phantom::eval
