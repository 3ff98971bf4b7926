#include "trainers/cli/args.h"

namespace phantom::cli {

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

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t e; (e = s.find(sep, b)) != std::string::npos; b = e + 1) out.push_back(s.substr(b, e - b));
  out.push_back(s.substr(b));
  return out;
}

}  // namespace phantom::cli
