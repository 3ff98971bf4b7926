#include "data/annotations.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "data/format_guess.h"
#include "phantom/util/files.h"

namespace phantom::data {
namespace fs = std::filesystem;
using nlohmann::json;

int64_t SkipCounts::total() const {
  int64_t n = 0;
  for (auto& kv : by_reason) n += kv.second;
  return n;
}

std::string SkipCounts::summary() const {
  if (by_reason.empty()) return "0 skipped";
  std::string s = std::to_string(total()) + " skipped:";
  bool first = true;
  for (auto& [reason, n] : by_reason) {
    s += (first ? " " : ", ") + std::to_string(n) + " " + reason;
    first = false;
  }
  return s;
}

DataError::DataError(const std::string& w, const std::string& r, const std::string& detail)
    : std::runtime_error("data error at " + w + ": " + r + (detail.empty() ? "" : " (" + detail + ")")), where(w),
      reason(r) {}

static std::string read_text(const std::string& path) {
  try {
    return util::read_regular_file(path);  // a FIFO or a directory is an error, never a hang
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("cannot read annotation file ") + e.what());
  }
}

std::vector<JsonSpan> split_json_array(const std::string& text, const std::string& file) {
  std::vector<JsonSpan> spans;
  size_t i = 0;
  int64_t line = 1;
  auto skip_ws = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) line += text[i++] == '\n';
  };
  skip_ws();
  if (i >= text.size() || text[i] != '[') throw std::runtime_error(file + ":" + std::to_string(line) + ": expected a JSON array");
  ++i;
  auto fail = [&](const std::string& what) { throw std::runtime_error(file + ":" + std::to_string(line) + ": " + what); };
  // Elements separated by exactly one comma: a trailing comma ("[{...},]"), a missing one ("{...} {...}") or a
  // doubled one are errors, as for any JSON parser (the elements are parsed one by one, so this is checked here).
  bool expect_element = true;
  while (true) {
    skip_ws();
    if (i >= text.size()) fail("unterminated JSON array (no closing ']')");
    if (text[i] == ']') {
      if (expect_element && !spans.empty()) fail("trailing comma before ']'");
      ++i;
      break;
    }
    if (text[i] == ',') {
      if (expect_element) fail(spans.empty() ? "comma before the first element" : "two commas in a row");
      expect_element = true;
      ++i;
      continue;
    }
    if (!expect_element) fail("missing comma between array elements");
    expect_element = false;
    JsonSpan s{i, i, line};
    int depth = 0;
    bool in_str = false;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '\n') ++line;
      if (in_str) {
        if (c == '\\') ++i;
        else if (c == '"') in_str = false;
        continue;
      }
      if (c == '"') in_str = true;
      else if (c == '{' || c == '[') ++depth;
      else if (c == '}' || c == ']') {
        if (depth == 0) break;  // the array's own ']'
        --depth;
      } else if (c == ',' && depth == 0) break;
      if (depth == 0 && (c == '}' || c == ']')) {
        ++i;
        break;
      }
    }
    if (i > text.size()) i = text.size();  // a trailing backslash inside a string stepped past the end
    s.end = i;
    spans.push_back(s);
  }
  skip_ws();
  if (i < text.size()) fail("unexpected text after the closing ']'");
  return spans;
}

namespace {

struct Ctx {
  const DataConfig& cfg;
  SkipCounts& skipped;
  std::string image_root;
};

// Applies the bad-input policy: rethrow under fail, count under skip.
template <class F>
void guarded(Ctx& ctx, F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    if (ctx.cfg.on_error == "fail") throw;
    ctx.skipped.add(e.reason, e.what());
  }
}

std::string text_field(const json& j, const std::string& key, const std::string& where, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw DataError(where, "missing field", "'" + key + "'");
    return "";
  }
  if (!it->is_string()) throw DataError(where, "malformed field", "'" + key + "' must be a string");
  return it->get<std::string>();
}

size_t count_placeholders(const std::string& s) {
  size_t n = 0;
  for (size_t p = s.find("<image>"); p != std::string::npos; p = s.find("<image>", p + 7)) ++n;
  return n;
}

// LLaVA/ShareGPT turns of `key`: alternating user, assistant, ..., starting with the user; assistant turns not
// empty. The last turn may be the user's (a preference row's question); the caller decides.
std::vector<Turn> parse_turns(const json& j, const std::string& where, const std::string& key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) throw DataError(where, "missing field", "'" + key + "'");
  std::vector<Turn> turns;
  for (auto& t : *it) {
    if (!t.is_object()) throw DataError(where, "malformed turn", "'" + key + "': turns must be objects");
    const auto role_it = t.contains("from") ? t.find("from") : t.find("role");
    if (role_it != t.end() && !role_it->is_string())
      throw DataError(where, "malformed turn", "'" + role_it.key() + "' must be a string, got " + role_it->dump());
    const std::string role = role_it == t.end() ? "" : role_it->get<std::string>();
    Turn turn;
    if (role == "human" || role == "user") turn.from_user = true;
    else if (role == "gpt" || role == "assistant") turn.from_user = false;
    else throw DataError(where, "unknown role", "'" + role + "' (expected human/user or gpt/assistant)");
    auto v = t.find("value") != t.end() ? t.find("value") : t.find("content");
    if (v == t.end() || !v->is_string()) throw DataError(where, "malformed turn", "a turn has no text 'value'");
    turn.text = v->get<std::string>();
    turns.push_back(std::move(turn));
  }
  if (turns.empty()) throw DataError(where, "empty conversation", "'" + key + "'");
  for (size_t i = 0; i < turns.size(); ++i)
    if (turns[i].from_user != (i % 2 == 0))
      throw DataError(where, "turn order", "'" + key + "': turns must alternate user, assistant, ... starting with the user");
  for (auto& t : turns)
    if (!t.from_user && t.text.find_first_not_of(" \t\n") == std::string::npos)
      throw DataError(where, "empty answer", "'" + key + "': an assistant turn is empty");
  return turns;
}

// A preference row: a triple (question, chosen, rejected: MMPR's layout), or a multi-turn conversation whose last
// assistant turn is the chosen answer (or that ends with the user's question and has a `chosen` field), with
// `rejected` alternatives to that last answer. The earlier turns become the sample's context (prompt only).
void parse_preference(const json& j, const std::string& where, const FieldMap& f, Sample& s) {
  const bool multi_turn = j.contains(f.conversations) && !j[f.conversations].is_null();
  if (multi_turn) {
    if (j.contains(f.question))
      throw DataError(where, "ambiguous row", "both '" + f.question + "' and '" + f.conversations + "': the question is the last user turn");
    auto turns = parse_turns(j, where, f.conversations);
    if (!turns.back().from_user) {
      if (j.contains(f.chosen))
        throw DataError(where, "ambiguous row", "'" + f.chosen + "' and a last assistant turn in '" + f.conversations +
                                                    "': the chosen answer is one or the other");
      s.chosen = turns.back().text;
      turns.pop_back();
    } else {
      s.chosen = text_field(j, f.chosen, where, true);
    }
    s.question = turns.back().text;
    turns.pop_back();
    s.context = std::move(turns);
  } else {
    s.question = text_field(j, f.question, where, true);
    s.chosen = text_field(j, f.chosen, where, true);
  }
  auto it = j.find(f.rejected);
  if (it == j.end() || it->is_null()) throw DataError(where, "missing field", "'" + f.rejected + "'");
  if (it->is_string()) s.rejected.push_back(it->get<std::string>());
  else if (it->is_array())
    for (auto& x : *it) {
      if (!x.is_string()) throw DataError(where, "malformed field", "'" + f.rejected + "' entries must be strings");
      s.rejected.push_back(x.get<std::string>());
    }
  else throw DataError(where, "malformed field", "'" + f.rejected + "' must be a string or a list");
  if (s.chosen.find_first_not_of(" \t\n") == std::string::npos) throw DataError(where, "empty answer", "'" + f.chosen + "'");
  if (s.rejected.empty()) throw DataError(where, "empty answer", "no rejected answer");
  for (auto& r : s.rejected) {
    if (r.find_first_not_of(" \t\n") == std::string::npos) throw DataError(where, "empty answer", "a rejected answer is empty");
    if (r == s.chosen)  // no preference to learn: the pair's margin is 0 whatever the model does
      throw DataError(where, "rejected equals chosen", "a '" + f.rejected + "' answer is the '" + f.chosen + "' answer itself");
  }
}

Sample parse_sample(const json& j, const std::string& where, const Ctx& ctx) {
  if (!j.is_object()) throw DataError(where, "malformed sample", "expected a JSON object");
  const auto& f = ctx.cfg.fields;
  Sample s;
  s.where = where;
  if (auto it = j.find(f.id); it != j.end()) s.id = it->is_string() ? it->get<std::string>() : it->dump();
  if (auto it = j.find(f.image); it != j.end() && !it->is_null()) {
    std::vector<std::string> rel;
    if (it->is_string()) rel.push_back(it->get<std::string>());
    else if (it->is_array()) {
      for (auto& x : *it) {
        if (!x.is_string()) throw DataError(where, "malformed field", "'" + f.image + "' must be a path or a list of paths");
        rel.push_back(x.get<std::string>());
      }
    } else {
      throw DataError(where, "malformed field", "'" + f.image + "' must be a path or a list of paths");
    }
    for (auto& r : rel) {
      fs::path p = fs::path(r).is_absolute() || ctx.image_root.empty() ? fs::path(r) : fs::path(ctx.image_root) / r;
      const std::string problem = util::file_problem(p.string());
      if (problem == "not found") throw DataError(where, "missing image", p.string());
      if (!problem.empty()) throw DataError(where, "unreadable image", p.string() + ": " + problem);
      s.images.push_back(p.string());
    }
  }
  size_t placeholders = 0;
  if (ctx.cfg.format == "preference") {
    parse_preference(j, where, f, s);
    placeholders = count_placeholders(s.question);
    for (auto& t : s.context) placeholders += count_placeholders(t.text);
  } else {
    s.turns = parse_turns(j, where, f.conversations);
    for (auto& t : s.turns) placeholders += count_placeholders(t.text);
    if (s.turns.back().from_user) throw DataError(where, "empty answer", "the conversation ends with a user turn");
  }
  if (placeholders != 0 && placeholders != s.images.size())
    throw DataError(where, "image count mismatch",
                    std::to_string(placeholders) + " <image> placeholders but " + std::to_string(s.images.size()) + " images");
  return s;
}

// Any JSON access the checks above did not foresee still becomes a DataError with file:line, never a bare
// "[json.exception.type_error.302]".
Sample parse_checked(const json& j, const std::string& where, const Ctx& ctx) {
  try {
    return parse_sample(j, where, ctx);
  } catch (const json::exception& e) {
    throw DataError(where, "malformed sample", e.what());
  }
}

void read_file_into(const std::string& path, Ctx& ctx, std::vector<Sample>& out) {
  const std::string text = read_text(path);
  size_t first = text.find_first_not_of(" \t\r\n");
  const bool array = first != std::string::npos && text[first] == '[';
  if (array) {
    std::vector<JsonSpan> spans;
    try {
      spans = split_json_array(text, path);
    } catch (const std::runtime_error& e) {
      throw DataError(path, "malformed JSON", e.what());  // the whole file is unreadable: never skippable
    }
    for (auto& sp : spans) {
      const std::string where = path + ":" + std::to_string(sp.line);
      guarded(ctx, [&] {
        json j;
        try {
          j = json::parse(text.begin() + static_cast<long>(sp.begin), text.begin() + static_cast<long>(sp.end));
        } catch (const json::exception& e) {  // parse errors and out-of-range numbers (1e309) alike
          throw DataError(where, "malformed JSON", e.what());
        }
        out.push_back(parse_checked(j, where, ctx));
      });
    }
    return;
  }
  std::istringstream lines(text);
  std::string line;
  int64_t n = 0;
  while (std::getline(lines, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n);
    guarded(ctx, [&] {
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception& e) {  // parse errors and out-of-range numbers (1e309) alike
        throw DataError(where, "malformed JSON", e.what());
      }
      out.push_back(parse_checked(j, where, ctx));
    });
  }
}

}  // namespace

std::vector<Sample> read_annotations(const std::string& path, const DataConfig& cfg, SkipCounts& skipped,
                                     uint64_t seed) {
  if (const std::string problem = util::file_problem(path); !problem.empty())
    throw std::runtime_error("annotation file " + path + ": " + problem);
  std::vector<Sample> out;
  if (cfg.format != "internvl_meta") {
    Ctx ctx{cfg, skipped, cfg.image_root};
    read_file_into(path, ctx, out);
    return out;
  }
  // InternVL meta: {"name": {"root": ..., "annotation": ..., "repeat_time": r}, ...}; each dataset holds
  // conversations (InternVL's SFT meta) or preference rows (MMPR's MPO meta): its "format" key (ours), else what
  // its first row looks like.
  json meta;
  try {
    meta = json::parse(read_text(path));
  } catch (const json::exception& e) {  // parse errors and out-of-range numbers (1e309) alike
    throw std::runtime_error(path + ": malformed meta JSON: " + e.what());
  }
  if (!meta.is_object()) throw std::runtime_error(path + ": a meta file maps dataset names to {root, annotation, repeat_time}");
  const fs::path base = fs::path(path).parent_path();
  for (auto& [name, d] : meta.items()) {
    const std::string here = path + ": dataset '" + name + "'";
    if (!d.is_object() || !d.contains("annotation"))
      throw std::runtime_error(here + " needs an 'annotation' file");
    auto text = [&](const char* key) {
      const json& v = d[key];
      if (!v.is_string()) throw std::runtime_error(here + ": '" + key + "' must be a path string, got " + v.dump());
      return v.get<std::string>();
    };
    auto resolve = [&](const std::string& p) { return fs::path(p).is_absolute() ? p : (base / p).string(); };
    const std::string annotation = resolve(text("annotation"));
    if (!fs::exists(annotation))
      throw std::runtime_error(here + ": annotation file " + annotation + " not found (relative paths are from the meta file's folder)");
    DataConfig sub = cfg;
    if (d.contains("format")) {
      sub.format = text("format");
      if (sub.format != "conversations" && sub.format != "preference")
        throw std::runtime_error(here + ": 'format' must be conversations or preference, got '" + sub.format + "'");
    } else {
      sub.format = guess_format(annotation, cfg) == "preference" ? "preference" : "conversations";
    }
    Ctx ctx{sub, skipped, d.contains("root") ? resolve(text("root")) : cfg.image_root};
    double repeat = 1.0;
    if (d.contains("repeat_time")) {
      if (!d["repeat_time"].is_number())
        throw std::runtime_error(here + ": 'repeat_time' must be a number, got " + d["repeat_time"].dump());
      repeat = d["repeat_time"].get<double>();
    }
    if (!(repeat > 0) || repeat > 1e6)
      throw std::runtime_error(here + ": 'repeat_time' must be in (0, 1e6]");
    std::vector<Sample> part;
    read_file_into(annotation, ctx, part);
    // Whole repeats, then a seeded subset for the fractional part (InternVL samples a fraction the same way).
    const auto whole = static_cast<int64_t>(repeat);
    for (int64_t r = 0; r < whole; ++r) out.insert(out.end(), part.begin(), part.end());
    const auto extra = static_cast<size_t>((repeat - static_cast<double>(whole)) * static_cast<double>(part.size()));
    if (extra > 0) {
      std::vector<size_t> idx(part.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::mt19937_64 rng(seed ^ std::hash<std::string>{}(name));
      for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[rng() % i]);
      idx.resize(extra);
      std::sort(idx.begin(), idx.end());
      for (auto i : idx) out.push_back(part[i]);
    }
  }
  return out;
}

}  // namespace phantom::data
