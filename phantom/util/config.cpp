#include "phantom/util/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "phantom/util/files.h"
#include "phantom/util/parse.h"

namespace phantom::config {
namespace fs = std::filesystem;

std::string Source::where(const YAML::Node& node) const {
  if (file.empty()) return "command line";
  const auto m = node.Mark();
  if (m.line < 0) return file;
  return file + ":" + std::to_string(m.line + 1);
}

std::string Check::describe() const {
  if (!choices.empty()) {  // an empty choice (a key that may stay unset) is said in words, never a blank
    std::string s = "one of";
    bool empty_ok = false, first = true;
    for (const auto& c : choices) {
      if (c.empty()) {
        empty_ok = true;
        continue;
      }
      s += (first ? " " : ", ") + c;
      first = false;
    }
    return empty_ok ? s + " (or empty)" : s;
  }
  std::ostringstream os;
  const bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
  if (has_lo && has_hi)
    os << "in " << (lo_open ? "(" : "[") << lo << ", " << hi << "]";
  else if (has_lo)
    os << (lo_open ? "> " : ">= ") << lo;
  else if (has_hi)
    os << "<= " << hi;
  return os.str();
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest(const std::string& key, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (auto& c : candidates) {
    size_t d = edit_distance(key, c);
    if (d < best_d) best_d = d, best = c;
  }
  // Only suggest when the typo is plausible (at most ~half the key changed), or the key is a prefix of a
  // valid one ("warmup" -> "warmup_steps").
  if (best_d <= std::max<size_t>(2, key.size() / 2)) return best;
  for (auto& c : candidates)
    if (key.size() >= 3 && c.rfind(key, 0) == 0) return c;
  return "";
}

static std::string shown(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "nothing";
}

[[noreturn]] static void type_error(const YAML::Node& n, const std::string& key, const char* expected,
                                    const Source& src) {
  throw ConfigError("config error: " + key + ": expected " + expected + ", got " + shown(n) + " (" + src.where(n) +
                    ")");
}

void read_scalar(const YAML::Node& n, bool& out, const std::string& key, const Source& src) {
  if (!n.IsScalar()) type_error(n, key, "a boolean (true/false)", src);
  const std::string& s = n.Scalar();
  if (s == "true" || s == "True" || s == "yes" || s == "on" || s == "1")
    out = true;
  else if (s == "false" || s == "False" || s == "no" || s == "off" || s == "0")
    out = false;
  else
    type_error(n, key, "a boolean (true/false)", src);
}

void read_scalar(const YAML::Node& n, int64_t& out, const std::string& key, const Source& src) {
  if (!n.IsScalar()) type_error(n, key, "an integer", src);
  // Decimal only ("010" and "0x10" are errors, not 8 and 16); integral exponent forms such as 1e4 are accepted.
  int64_t v = 0;
  if (!util::parse_int(n.Scalar(), v, /*allow_exponent=*/true))
    type_error(n, key, "a decimal integer (no leading zeros, no hex)", src);
  out = v;
}

void read_scalar(const YAML::Node& n, int& out, const std::string& key, const Source& src) {
  int64_t v = 0;
  read_scalar(n, v, key, src);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    type_error(n, key, "a 32-bit integer", src);
  out = static_cast<int>(v);
}

void read_scalar(const YAML::Node& n, double& out, const std::string& key, const Source& src) {
  if (!n.IsScalar()) type_error(n, key, "a number", src);
  double v = 0;
  if (!util::parse_number(n.Scalar(), v)) type_error(n, key, "a number", src);
  out = v;
}

void read_scalar(const YAML::Node& n, std::string& out, const std::string& key, const Source& src) {
  if (n.IsNull()) {
    out.clear();
    return;
  }
  if (!n.IsScalar()) type_error(n, key, "a string", src);
  out = n.Scalar();
}

void check_value(double v, const Check& c, const std::string& key, const YAML::Node& n, const Source& src) {
  const bool below = c.lo_open ? !(v > c.lo) : !(v >= c.lo);
  if (below || v > c.hi)
    throw ConfigError("config error: " + key + ": expected a value " + c.describe() + ", got " + shown(n) + " (" +
                      src.where(n) + ")");
}

void check_value(const std::string& v, const Check& c, const std::string& key, const YAML::Node& n,
                 const Source& src) {
  if (c.choices.empty()) return;
  if (std::find(c.choices.begin(), c.choices.end(), v) == c.choices.end()) {
    std::string msg = "config error: " + key + ": expected " + c.describe() + ", got " + shown(n) + " (" +
                      src.where(n) + ")";
    std::string best = closest(v, c.choices);
    if (!best.empty() && !v.empty()) msg += "; did you mean '" + best + "'?";
    throw ConfigError(msg);
  }
}

void Writer::emit(const double& v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  std::string s = os.str();
  // Keep it a float when read back (1 -> 1.0) so the saved config reads as the same type.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  out_ << s;
}

// yaml-cpp keeps every pair of a mapping with a repeated key and lookups return the first, so `lr` written twice
// would silently use the first value. Repeated keys and non-scalar keys are errors naming both lines.
// Aliases share nodes, so a few lines can name billions of them ("billion laughs"): the walk has a budget.
static void check_structure(const YAML::Node& node, const std::string& file, int depth, size_t& visited) {
  auto where = [&](const YAML::Node& n) { return file.empty() ? std::string("command line") : Source{file}.where(n); };
  if (depth > 64) throw ConfigError("config error: nesting deeper than 64 levels (" + where(node) + ")");
  if (++visited > 1000000) throw ConfigError("config error: more than a million values (aliases?) (" + where(node) + ")");
  if (node.IsSequence()) {
    for (auto it = node.begin(); it != node.end(); ++it) check_structure(*it, file, depth + 1, visited);
  } else if (node.IsMap()) {
    std::map<std::string, YAML::Node> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar())
        throw ConfigError("config error: a key must be a plain name, not a list or mapping (" + where(it->first) +
                          ")");
      const std::string key = it->first.Scalar();
      auto [prev, fresh] = seen.emplace(key, it->first);
      if (!fresh)
        throw ConfigError("config error: duplicate key '" + key + "' (" + where(it->first) + "; first at " +
                          where(prev->second) + "): remove one of them");
      check_structure(it->second, file, depth + 1, visited);
    }
  }
}

static void collect_layers(const fs::path& path, std::vector<Layer>& out, std::vector<std::string>& stack) {
  const std::string shown_path = path.lexically_normal().string();
  std::error_code ec;
  if (!fs::exists(path, ec) && ec.value() != ELOOP) {
    if (stack.empty()) throw ConfigError("config error: config file not found: " + shown_path);
    throw ConfigError("config error: base config not found: " + shown_path + " (included from " + stack.back() + ")");
  }
  for (auto& s : stack)
    if (s == shown_path) throw ConfigError("config error: include cycle through " + shown_path);
  if (const std::string problem = util::file_problem(path.string()); !problem.empty())
    throw ConfigError("config error: cannot read config file " + shown_path + ": " + problem);
  YAML::Node root;
  try {
    root = YAML::Load(util::read_regular_file(path.string(), 64u << 20));
  } catch (const YAML::ParserException& e) {
    throw ConfigError("config error: invalid YAML in " + shown_path + ":" + std::to_string(e.mark.line + 1) + ": " +
                      e.msg);
  } catch (const YAML::Exception& e) {
    throw ConfigError("config error: invalid YAML in " + shown_path + ": " + e.msg);
  } catch (const std::runtime_error& e) {
    throw ConfigError(std::string("config error: cannot read config file ") + e.what());
  }
  size_t visited = 0;
  check_structure(root, shown_path, 0, visited);
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw ConfigError("config error: " + shown_path + ": the top level must be a mapping of keys");
  stack.push_back(shown_path);
  if (YAML::Node base = root["base"]) {
    if (!base.IsScalar())
      throw ConfigError("config error: base: expected a file name (" + shown_path + ":" +
                        std::to_string(base.Mark().line + 1) + ")");
    collect_layers(path.parent_path() / base.Scalar(), out, stack);
    root.remove("base");
  }
  stack.pop_back();
  out.push_back(Layer{root, Source{shown_path}});
}

std::vector<Layer> load_layers(const std::string& path) {
  std::vector<Layer> layers;
  std::vector<std::string> stack;
  collect_layers(fs::path(path), layers, stack);
  return layers;
}

YAML::Node parse_override(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("config error: override '" + assignment + "' (command line): expected key=value");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception&) {
    value = YAML::Node(text);  // not valid YAML: keep it as the literal string
  }
  if (!value || value.IsNull()) value = YAML::Node(text);
  size_t visited = 0;
  check_structure(value, "", 0, visited);
  // Build {a: {b: {c: value}}} from the dotted path.
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (auto& p : parts)
    if (p.empty()) throw ConfigError("config error: override '" + assignment + "' (command line): empty key part");
  YAML::Node node = value;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    YAML::Node parent(YAML::NodeType::Map);
    parent[*it] = node;
    node = parent;
  }
  return node;
}

}  // namespace phantom::config
