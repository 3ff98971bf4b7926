// Typed YAML configs with file/line errors, includes and dotted command-line overrides.
//
// A config section is a plain struct with a `visit` template that lists its fields once:
//
//   struct OptimConfig {
//     double lr = 1e-5;
//     template <class V> void visit(V& v) {
//       v.field("lr", lr, "peak learning rate", Check::range(0, 1));
//     }
//   };
//
// Every visitor (reader, writer, name collector) walks that one list, so the schema, the validation, the error
// messages and the saved resolved config can never disagree.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace phantom::config {

// Raised for every config problem; `what()` is one line naming the key and where it came from.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Optional validation of a field's value.
struct Check {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;  // lo < x instead of lo <= x
  std::vector<std::string> choices;

  static Check range(double lo, double hi) { return Check{lo, hi, false, {}}; }
  static Check positive() { return Check{0, std::numeric_limits<double>::infinity(), true, {}}; }
  static Check non_negative() { return Check{0, std::numeric_limits<double>::infinity(), false, {}}; }
  static Check one_of(std::vector<std::string> c) {
    Check k;
    k.choices = std::move(c);
    return k;
  }
  std::string describe() const;  // "a number in [0, 1]" etc.
};

// Where a YAML node came from, for messages: "configs/demo.yaml:12" or "command line".
struct Source {
  std::string file;  // empty for the command line
  std::string where(const YAML::Node& node) const;
};

// Edit distance used for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);
std::string closest(const std::string& key, const std::vector<std::string>& candidates);

// ---- value conversion (defined in config.cpp for the supported scalar types) ----
void read_scalar(const YAML::Node& n, bool& out, const std::string& key, const Source& src);
void read_scalar(const YAML::Node& n, int64_t& out, const std::string& key, const Source& src);
void read_scalar(const YAML::Node& n, int& out, const std::string& key, const Source& src);
void read_scalar(const YAML::Node& n, double& out, const std::string& key, const Source& src);
void read_scalar(const YAML::Node& n, std::string& out, const std::string& key, const Source& src);
template <class T>
void read_scalar(const YAML::Node& n, std::vector<T>& out, const std::string& key, const Source& src) {
  if (!n.IsSequence())
    throw ConfigError("config error: " + key + ": expected a list, got '" + (n.IsScalar() ? n.Scalar() : "a map") +
                      "' (" + src.where(n) + ")");
  std::vector<T> values;
  for (size_t i = 0; i < n.size(); ++i) {
    T v{};
    read_scalar(n[i], v, key + "[" + std::to_string(i) + "]", src);
    values.push_back(std::move(v));
  }
  out = std::move(values);
}
// An optional field: absent means "inherit" (e.g. a stage's optimiser settings fall back to the top-level ones).
template <class T>
void read_scalar(const YAML::Node& n, std::optional<T>& out, const std::string& key, const Source& src) {
  T v{};
  read_scalar(n, v, key, src);
  out = std::move(v);
}
void check_value(double v, const Check& c, const std::string& key, const YAML::Node& n, const Source& src);
void check_value(const std::string& v, const Check& c, const std::string& key, const YAML::Node& n,
                 const Source& src);
template <class T>
void check_value(const T&, const Check&, const std::string&, const YAML::Node&, const Source&) {}
inline void check_value(int64_t v, const Check& c, const std::string& k, const YAML::Node& n, const Source& s) {
  check_value(static_cast<double>(v), c, k, n, s);
}
inline void check_value(int v, const Check& c, const std::string& k, const YAML::Node& n, const Source& s) {
  check_value(static_cast<double>(v), c, k, n, s);
}
template <class T>
void check_value(const std::optional<T>& v, const Check& c, const std::string& k, const YAML::Node& n,
                 const Source& s) {
  if (v) check_value(*v, c, k, n, s);
}

// ---- visitors ----

// Collects the names a struct accepts (for unknown-key detection and suggestions).
struct NameCollector {
  std::vector<std::string> names;
  template <class T>
  void field(const char* name, T&, const char* = "", const Check& = {}) { names.emplace_back(name); }
  template <class T>
  void section(const char* name, T&, const char* = "") { names.emplace_back(name); }
  template <class T>
  void list(const char* name, std::vector<T>&, const char* = "") { names.emplace_back(name); }
};

// Every dotted key path a struct accepts, for suggestions on the command line ("optim.lr", ...).
struct PathCollector {
  std::string prefix;
  std::vector<std::string>* out;
  template <class T>
  void field(const char* name, T&, const char* = "", const Check& = {}) { out->push_back(prefix + name); }
  template <class T>
  void section(const char* name, T& sub, const char* = "") {
    PathCollector c{prefix + name + ".", out};
    sub.visit(c);
  }
  template <class T>
  void list(const char* name, std::vector<T>&, const char* = "") {
    out->push_back(prefix + name);
    T probe{};
    PathCollector c{prefix + name + ".<i>.", out};
    probe.visit(c);
  }
};

// Applies one YAML mapping onto a struct; keys absent from the mapping keep their current values.
class Reader {
 public:
  Reader(const YAML::Node& node, const Source& src, std::string prefix) : node_(node), src_(src), prefix_(prefix) {}

  template <class S>
  static void apply(const YAML::Node& node, S& target, const Source& src, const std::string& prefix = "") {
    if (!node || node.IsNull()) return;
    if (!node.IsMap())
      throw ConfigError("config error: " + (prefix.empty() ? std::string("<top level>") : prefix) +
                        ": expected a mapping of keys (" + src.where(node) + ")");
    NameCollector names;
    target.visit(names);
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      bool known = false;
      for (auto& n : names.names) known |= (n == key);
      if (!known) {
        std::string msg = "config error: unknown key '" + prefix + key + "' (" + src.where(it->first) + ")";
        std::string best = closest(key, names.names);
        if (!best.empty()) msg += "; did you mean '" + prefix + best + "'?";
        throw ConfigError(msg);
      }
    }
    Reader r(node, src, prefix);
    target.visit(r);
  }

  template <class T>
  void field(const char* name, T& value, const char* = "", const Check& check = {}) {
    YAML::Node n = node_[name];
    if (!n) return;
    const std::string key = prefix_ + name;
    T v = value;
    read_scalar(n, v, key, src_);
    check_value(v, check, key, n, src_);
    value = std::move(v);
  }
  template <class T>
  void section(const char* name, T& sub, const char* = "") {
    YAML::Node n = node_[name];
    if (!n) return;
    apply(n, sub, src_, prefix_ + name + ".");
  }
  // A list of structs. A YAML sequence replaces the list; a mapping with integer keys edits those elements
  // (so `train.stages.1.optim.lr=2e-5` works on the command line).
  template <class T>
  void list(const char* name, std::vector<T>& items, const char* = "") {
    YAML::Node n = node_[name];
    if (!n) return;
    const std::string key = prefix_ + name;
    if (n.IsSequence()) {
      std::vector<T> fresh(n.size());
      for (size_t i = 0; i < n.size(); ++i) apply(n[i], fresh[i], src_, key + "." + std::to_string(i) + ".");
      items = std::move(fresh);
    } else if (n.IsMap()) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        const std::string idx = it->first.as<std::string>();
        size_t pos = 0;
        long i = -1;
        try {
          i = std::stol(idx, &pos);
        } catch (...) {
        }
        if (pos != idx.size() || i < 0 || static_cast<size_t>(i) >= items.size())
          throw ConfigError("config error: " + key + "." + idx + ": expected an index in [0, " +
                            std::to_string(items.size()) + ") (" + src_.where(it->first) + ")");
        apply(it->second, items[static_cast<size_t>(i)], src_, key + "." + idx + ".");
      }
    } else {
      throw ConfigError("config error: " + key + ": expected a list (" + src_.where(n) + ")");
    }
  }

 private:
  YAML::Node node_;
  const Source& src_;
  std::string prefix_;
};

// Writes a struct as YAML, each field with its doc comment: the saved resolved config documents itself.
class Writer {
 public:
  explicit Writer(YAML::Emitter& out) : out_(out) {}
  template <class T>
  void field(const char* name, T& value, const char* doc = "", const Check& = {}) {
    out_ << YAML::Key << name << YAML::Value;
    emit(value);
    if (doc && *doc) out_ << YAML::Comment(doc);
  }
  template <class T>
  void field(const char* name, std::optional<T>& value, const char* doc = "", const Check& c = {}) {
    if (value) field(name, *value, doc, c);  // unset optional fields inherit: nothing to write
  }
  template <class T>
  void section(const char* name, T& sub, const char* doc = "") {
    out_ << YAML::Key << name;
    if (doc && *doc) out_ << YAML::Comment(doc);
    out_ << YAML::Value << YAML::BeginMap;
    sub.visit(*this);
    out_ << YAML::EndMap;
  }
  template <class T>
  void list(const char* name, std::vector<T>& items, const char* doc = "") {
    out_ << YAML::Key << name;
    if (doc && *doc) out_ << YAML::Comment(doc);
    out_ << YAML::Value << YAML::BeginSeq;
    for (auto& it : items) {
      out_ << YAML::BeginMap;
      it.visit(*this);
      out_ << YAML::EndMap;
    }
    out_ << YAML::EndSeq;
  }

 private:
  template <class T>
  void emit(const T& v) { out_ << v; }
  void emit(const double& v);
  template <class T>
  void emit(const std::vector<T>& v) {
    out_ << YAML::Flow << YAML::BeginSeq;
    for (auto& x : v) emit(x);
    out_ << YAML::EndSeq;
  }
  YAML::Emitter& out_;
};

// ---- loading ----

// Parses `path`, following `base:` includes (paths relative to the including file), and returns the chain from
// the root base to `path` itself, each with its file name. Errors name the file.
struct Layer {
  YAML::Node node;
  Source source;
};
std::vector<Layer> load_layers(const std::string& path);

// Turns `a.b.c=value` into a nested YAML node; the value is parsed as YAML (so `[1,2]` is a list).
YAML::Node parse_override(const std::string& assignment);

// Full load: defaults in `target`, then each include layer, then the overrides.
template <class S>
void load(S& target, const std::string& path, const std::vector<std::string>& overrides) {
  for (auto& layer : load_layers(path)) Reader::apply(layer.node, target, layer.source);
  Source cli{""};
  for (auto& o : overrides) {
    YAML::Node n = parse_override(o);
    try {
      Reader::apply(n, target, cli);
    } catch (const ConfigError& e) {
      // Suggest among full dotted paths: "optim.lrr" -> "optim.lr".
      std::string msg = e.what();
      if (msg.find("unknown key") != std::string::npos && msg.find("did you mean") == std::string::npos) {
        std::vector<std::string> paths;
        PathCollector pc{"", &paths};
        target.visit(pc);
        std::string key = o.substr(0, o.find('='));
        std::string best = closest(key, paths);
        if (!best.empty()) msg += "; did you mean '" + best + "'?";
      }
      throw ConfigError(msg);
    }
  }
}

template <class S>
std::string to_yaml(S& target, const std::string& header = "") {
  YAML::Emitter out;
  out.SetIndent(2);
  if (!header.empty()) out << YAML::Comment(header) << YAML::Newline;
  out << YAML::BeginMap;
  Writer w(out);
  target.visit(w);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace phantom::config
