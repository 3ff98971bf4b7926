// Command-line parsing shared by the subcommands: `--flag value`, `--switch`, and `dotted.key=value` overrides.
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace phantom::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::map<std::string, std::string> options;  // --name value
  std::set<std::string> switches;               // --name (no value)
  std::vector<std::string> overrides;           // key=value
  std::vector<std::string> positional;

  bool has(const std::string& name) const { return options.count(name) || switches.count(name); }
  std::string get(const std::string& name, const std::string& fallback = "") const {
    auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  }
  std::string require(const std::string& name) const {
    auto it = options.find(name);
    if (it == options.end()) throw UsageError("missing required option --" + name);
    return it->second;
  }
};

// `value_options` take a value; `switch_options` do not; anything else starting with -- is a usage error.
// A switch listed in `optional_value` may be followed by a value that does not start with "--" and has no '='
// (e.g. `--resume` or `--resume runs/x/ckpt`).
Args parse_args(int argc, char** argv, int first, const std::set<std::string>& value_options,
                const std::set<std::string>& switch_options, const std::set<std::string>& optional_value = {});

// "a,b,,c" split at `sep` into {"a", "b", "", "c"} (empty fields kept: the caller names what is wrong with them).
std::vector<std::string> split(const std::string& s, char sep);

}  // namespace phantom::cli
