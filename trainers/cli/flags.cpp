#include "trainers/cli/flags.h"

#include <sstream>

#include "phantom/util/parse.h"
#include "phantom/util/threads.h"

namespace phantom::cli {

static std::string shown(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

int64_t int_flag(const Args& a, const std::string& name, int64_t fallback, int64_t lo, int64_t hi) {
  auto it = a.options.find(name);
  if (it == a.options.end()) return fallback;
  int64_t v = 0;
  if (!util::parse_int(it->second, v))
    throw UsageError("--" + name + ": expected a decimal integer, got '" + it->second + "'");
  if (v < lo || v > hi) {
    const std::string range = lo == INT64_MIN ? "<= " + std::to_string(hi)
                              : hi == INT64_MAX ? ">= " + std::to_string(lo)
                                                : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    throw UsageError("--" + name + ": expected an integer " + range + ", got " + it->second);
  }
  return v;
}

double number_flag(const Args& a, const std::string& name, double fallback, double lo, double hi) {
  auto it = a.options.find(name);
  if (it == a.options.end()) return fallback;
  double v = 0;
  if (!util::parse_number(it->second, v))
    throw UsageError("--" + name + ": expected a number, got '" + it->second + "'");
  if (v < lo || v > hi)
    throw UsageError("--" + name + ": expected a number in [" + shown(lo) + ", " + shown(hi) + "], got " + it->second);
  return v;
}

int64_t threads_flag(const Args& a) {
  const int64_t n = int_flag(a, "threads", 0, 0);
  if (std::string p = util::threads_problem(n, "--threads"); !p.empty()) throw UsageError(p);
  return n;
}

}  // namespace phantom::cli
