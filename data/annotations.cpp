#include "data/annotations.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "data/format_guess.h"
#include "data/sample_set.h"
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

std::vector<JsonSpan> split_json_array(std::string_view text, const std::string& file) {
  std::vector<JsonSpan> spans;
  scan_json_array(text, file, [&](size_t begin, size_t end, int64_t line) { spans.push_back({begin, end, line}); });
  return spans;
}

namespace {

struct Ctx {
  const DataConfig& cfg;
  const std::string& image_root;
};

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

}  // namespace

Sample parse_row(std::string_view json_text, const std::string& where, const DataConfig& cfg,
                 const std::string& image_root) {
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {  // parse errors and out-of-range numbers (1e309) alike
    throw DataError(where, "malformed JSON", e.what());
  }
  return parse_checked(j, where, Ctx{cfg, image_root});
}

std::vector<AnnotationSource> annotation_sources(const std::string& path, const DataConfig& cfg) {
  if (const std::string problem = util::file_problem(path); !problem.empty())
    throw std::runtime_error("annotation file " + path + ": " + problem);
  if (cfg.format != "internvl_meta") return {AnnotationSource{path, cfg.image_root, "", cfg, 1.0}};
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
  std::vector<AnnotationSource> out;
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
    AnnotationSource src;
    src.name = name;
    src.path = resolve(text("annotation"));
    if (!fs::exists(src.path))
      throw std::runtime_error(here + ": annotation file " + src.path + " not found (relative paths are from the meta file's folder)");
    src.cfg = cfg;
    if (d.contains("format")) {
      src.cfg.format = text("format");
      if (src.cfg.format != "conversations" && src.cfg.format != "preference")
        throw std::runtime_error(here + ": 'format' must be conversations or preference, got '" + src.cfg.format + "'");
    } else {
      src.cfg.format = guess_format(src.path, cfg) == "preference" ? "preference" : "conversations";
    }
    src.image_root = d.contains("root") ? resolve(text("root")) : cfg.image_root;
    if (d.contains("repeat_time")) {
      if (!d["repeat_time"].is_number())
        throw std::runtime_error(here + ": 'repeat_time' must be a number, got " + d["repeat_time"].dump());
      src.repeat = d["repeat_time"].get<double>();
    }
    if (!(src.repeat > 0) || src.repeat > 1e6)
      throw std::runtime_error(here + ": 'repeat_time' must be in (0, 1e6]");
    out.push_back(std::move(src));
  }
  return out;
}

std::vector<Sample> read_annotations(const std::string& path, const DataConfig& cfg, SkipCounts& skipped,
                                     uint64_t seed) {
  std::vector<Sample> out;
  for (const auto& src : annotation_sources(path, cfg)) {
    const IndexedFile f = index_file(src.path, src.cfg.fields.image);
    std::vector<Sample> part;
    for (const auto& r : f.rows) {
      try {
        part.push_back(parse_row(f.map->view().substr(r.begin, r.size), row_where(src.path, r, f.array), src.cfg, src.image_root));
      } catch (const DataError& e) {  // the bad-input policy: rethrow under fail, count under skip
        if (cfg.on_error == "fail") throw;
        skipped.add(e.reason, e.what());
      }
    }
    if (src.repeat == 1.0) {
      std::move(part.begin(), part.end(), std::back_inserter(out));
    } else {
      for (size_t i : repeated_rows(part.size(), src.repeat, seed, src.name)) out.push_back(part[i]);
    }
  }
  return out;
}

}  // namespace phantom::data
