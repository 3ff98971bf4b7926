#include "phantom/util/parse.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace phantom::util {

static bool all_digits(const std::string& s, size_t from, size_t to) {
  if (from >= to) return false;
  for (size_t i = from; i < to; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// Leading zeros are refused: "010" would be octal to C and YAML 1.1, decimal to a reader of the config.
static bool leading_zero(const std::string& s, size_t from, size_t to) {
  return to - from > 1 && s[from] == '0' && s[from + 1] >= '0' && s[from + 1] <= '9';
}

bool parse_int(const std::string& s, int64_t& out, bool allow_exponent) {
  const size_t start = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (all_digits(s, start, s.size())) {
    if (leading_zero(s, start, s.size())) return false;
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno == ERANGE || end != s.c_str() + s.size()) return false;
    out = v;
    return true;
  }
  if (!allow_exponent) return false;
  size_t mantissa_end = start;
  while (mantissa_end < s.size() && s[mantissa_end] != 'e' && s[mantissa_end] != 'E') ++mantissa_end;
  if (mantissa_end == s.size()) return false;  // "2.5" is not an integer; only exponent forms are accepted
  const size_t dot = s.find('.', start);
  const size_t int_end = dot < mantissa_end ? dot : mantissa_end;
  if (!all_digits(s, start, int_end) || leading_zero(s, start, int_end)) return false;
  double d = 0;
  if (!parse_number(s, d) || std::floor(d) != d || std::abs(d) > 9.0e18) return false;
  out = static_cast<int64_t>(d);
  return true;
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E')) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  if (errno == ERANGE && v != 0) return false;  // overflow (underflow to a tiny value is fine)
  out = v;
  return true;
}

}  // namespace phantom::util
