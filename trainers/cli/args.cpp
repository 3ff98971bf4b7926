#include "trainers/cli/args.h"

#include <sstream>

#include "phantom/util/parse.h"
#include "phantom/util/threads.h"

namespace phantom::cli {

static std::string shown(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

int64_t Args::get_int(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const {
  auto it = options.find(name);
  if (it == options.end()) return fallback;
  int64_t v = 0;
  if (!util::parse_int(it->second, v))
    throw UsageError("--" + name + ": expected a decimal integer, got '" + it->second + "'");
  if (v < lo || v > hi) {
    std::string range = lo == INT64_MIN ? "<= " + std::to_string(hi)
                        : hi == INT64_MAX ? ">= " + std::to_string(lo)
                                          : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    throw UsageError("--" + name + ": expected an integer " + range + ", got " + it->second);
  }
  return v;
}

double Args::get_number(const std::string& name, double fallback, double lo, double hi) const {
  auto it = options.find(name);
  if (it == options.end()) return fallback;
  double v = 0;
  if (!util::parse_number(it->second, v))
    throw UsageError("--" + name + ": expected a number, got '" + it->second + "'");
  if (v < lo || v > hi)
    throw UsageError("--" + name + ": expected a number in [" + shown(lo) + ", " + shown(hi) + "], got " + it->second);
  return v;
}

int64_t Args::get_threads() const {
  const int64_t n = get_int("threads", 0, 0);
  if (std::string p = util::threads_problem(n, "--threads"); !p.empty()) throw UsageError(p);
  return n;
}

Args parse_args(int argc, char** argv, int first, const std::set<std::string>& value_options,
                const std::set<std::string>& switch_options, const std::set<std::string>& optional_value) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      std::string name = s.substr(2), value;
      const auto eq = name.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) value = name.substr(eq + 1), name = name.substr(0, eq);
      if (value_options.count(name)) {
        if (!inline_value) {
          if (i + 1 >= argc) throw UsageError("option --" + name + " needs a value");
          value = argv[++i];
        }
        a.options[name] = value;
      } else if (optional_value.count(name)) {
        if (!inline_value && i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0 &&
            std::string(argv[i + 1]).find('=') == std::string::npos)
          value = argv[++i];
        if (value.empty())
          a.switches.insert(name);
        else
          a.options[name] = value;
      } else if (switch_options.count(name) && !inline_value) {
        a.switches.insert(name);
      } else {
        throw UsageError("unknown option --" + name + " (see --help)");
      }
    } else if (s.find('=') != std::string::npos) {
      a.overrides.push_back(s);
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

}  // namespace phantom::cli
