#include "data/format_guess.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace phantom::data {
using nlohmann::json;

namespace {

// The first row of a JSONL file, the first element of a JSON array, or a whole JSON object (a meta file); read
// from at most the first 4 MiB.
json first_row(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(4 << 20, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  const size_t b = head.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return nullptr;
  if (head[b] == '[') {
    // The first element: parse a growing prefix until it closes (the array itself may be longer than 4 MiB).
    int depth = 0;
    bool in_str = false;
    for (size_t i = b + 1; i < head.size(); ++i) {
      const char c = head[i];
      if (in_str) {
        if (c == '\\') ++i;
        else if (c == '"') in_str = false;
      } else if (c == '"') {
        in_str = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return json::parse(head.begin() + static_cast<long>(b) + 1, head.begin() + static_cast<long>(i) + 1, nullptr, false);
      }
    }
    return nullptr;
  }
  const json whole = json::parse(head, nullptr, false);
  if (!whole.is_discarded()) return whole;
  return json::parse(head.substr(b, head.find('\n', b) - b), nullptr, false);
}

}  // namespace

std::string guess_format(const std::string& path, const DataConfig& cfg) {
  const json row = first_row(path);
  if (!row.is_object() || row.empty()) return "";
  const auto& f = cfg.fields;
  // A conversation with rejected alternatives to its last answer is a (multi-turn) preference row.
  if (row.contains(f.conversations)) return row.contains(f.rejected) ? "preference" : "conversations";
  if (row.contains(f.question) && row.contains(f.chosen)) return "preference";
  bool meta = true;
  for (auto& [name, d] : row.items()) meta = meta && d.is_object() && d.contains("annotation");
  return meta ? "internvl_meta" : "";
}

std::string format_mismatch_hint(const std::string& path, const DataConfig& cfg, const std::string& format_key) {
  const std::string looks = guess_format(path, cfg);
  if (looks.empty() || looks == cfg.format) return "";
  return path + " was read as " + format_key + "=" + cfg.format + ", but its first row looks like " + looks +
         ": pick that format with " + format_key + (format_key.rfind("--", 0) == 0 ? " " : "=") + looks;
}

}  // namespace phantom::data
