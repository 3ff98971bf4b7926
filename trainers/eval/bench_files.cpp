// File formats of the benchmark readers and row-error collection (bench_files.h).
#include "trainers/eval/bench_files.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "phantom/util/logf.h"

namespace phantom::eval {

data::RgbImage BenchImage::decode() const {
  if (!bytes.empty())
    return data::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
  return data::load_image(path);
}

namespace files {
namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open (missing or unreadable)");
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);  // UTF-8 BOM
  return s;
}

json read_json(const std::string& path) {
  const std::string text = read_text(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
}

std::vector<JsonLine> read_jsonl(const std::string& path, std::vector<RowError>& errors) {
  const std::string text = read_text(path);
  std::vector<JsonLine> out;
  std::istringstream in(text);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (trim(line).empty()) continue;
    try {
      out.push_back({n, json::parse(line)});
    } catch (const json::exception&) {
      errors.push_back({path, "line " + std::to_string(n), "not valid JSON"});
    }
  }
  return out;
}

int Table::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return int(i);
  return -1;
}

Table read_tsv(const std::string& path) {
  const std::string text = read_text(path);
  std::vector<Table::Row> rows;
  std::vector<std::string> fields;
  std::string field;
  bool at_field_start = true, in_quotes = false, quoted = false;
  int64_t line = 1, row_line = 1, quote_line = 0;
  auto end_row = [&] {
    fields.push_back(field);
    // pandas skips blank lines
    if (!(fields.size() == 1 && fields[0].empty() && !quoted)) rows.push_back({row_line, fields});
    fields.clear();
    field.clear();
    at_field_start = true;
    quoted = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;  // what follows up to the tab is kept as-is (pandas does the same)
        }
        continue;
      }
      if (c == '\n') ++line;
      field += c;
      continue;
    }
    if (at_field_start && c == '"') {
      in_quotes = quoted = true;
      at_field_start = false;
      quote_line = line;
      continue;
    }
    if (c == '\t') {
      fields.push_back(field);
      field.clear();
      at_field_start = true;
      continue;
    }
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_row();
      row_line = ++line;
      continue;
    }
    field += c;
    at_field_start = false;
  }
  if (in_quotes)
    throw std::runtime_error(path + ": quoted field opened on line " + std::to_string(quote_line) +
                             " is never closed");
  if (!field.empty() || !fields.empty() || quoted) end_row();
  if (rows.empty()) throw std::runtime_error(path + ": empty TSV (no header)");
  Table t;
  t.header = rows.front().fields;
  for (auto& h : t.header) h = trim(h);
  t.rows.assign(rows.begin() + 1, rows.end());
  return t;
}

bool pandas_na(const std::string& s) {
  static const char* const kNa[] = {"",     "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                                    "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",     "NULL",     "NaN",  "None",
                                    "n/a",  "nan",  "null"};
  for (const char* na : kNa)
    if (s == na) return true;
  return false;
}

std::optional<std::string> base64_decode(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0, chars = 0, pad = 0;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (c == '=') {
      ++pad;
      ++chars;
      continue;
    }
    const int v = value(c);
    if (v < 0 || pad > 0) return std::nullopt;  // foreign character, or data after padding
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    ++chars;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xFF);
    }
  }
  if (chars % 4 != 0 || pad > 2 || chars == 0) return std::nullopt;
  return out;
}

std::optional<std::string> parenthesized_letter(const std::string& a, size_t n_options) {
  if (a.size() != 3 || a[0] != '(' || a[2] != ')' || a[1] < 'A' || static_cast<size_t>(a[1] - 'A') >= n_options)
    return std::nullopt;
  return std::string(1, a[1]);
}

bool set_parenthesized_answer(BenchItem& it, const std::string& a, Errors& errors) {
  const auto letter = parenthesized_letter(a, it.options.size());
  if (!letter) {
    errors.add(it.id, "answer '" + a + "' is not one of (A).. for " + std::to_string(it.options.size()) + " choices");
    return false;
  }
  it.answer = *letter;
  return true;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string lower(const std::string& s) {
  std::string out = s;
  for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<std::string> field(const json& obj, const char* key) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(key);
  if (it == obj.end()) return std::nullopt;
  const json& v = *it;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_float()) return fmt::format("{}", v.get<double>());
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return std::nullopt;
}

void Errors::finish(ReadResult& out) {
  if (list_.empty()) return;
  if (!opt_.skip_bad_rows) {
    std::string msg = file_ + ": " + std::to_string(list_.size()) + " bad row(s): ";
    const size_t shown = std::min<size_t>(list_.size(), 5);
    for (size_t i = 0; i < shown; ++i) msg += (i ? "; row " : "row ") + list_[i].row + " (" + list_[i].message + ")";
    if (list_.size() > shown) msg += "; ...";
    msg += opt_.skip_hint.empty() ? " (fix or remove these rows)" : " (" + opt_.skip_hint + " drops them instead)";
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    throw std::runtime_error(msg);
  }
  log::warn("{}: skipping {} bad row(s)", file_, list_.size());
  for (size_t i = 0; i < std::min<size_t>(list_.size(), 20); ++i) log::warn("  {}", list_[i].str());
  out.errors.insert(out.errors.end(), list_.begin(), list_.end());
}

// Some published paths differ from the files only in the extension's case (HallusionBench has both .png and
// .PNG); Phantom's loader retries with the other case, so we do too.
static std::string existing_variant(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return "";
  std::string ext = path.substr(dot);
  const std::string lo = lower(ext);
  std::string up = ext;
  for (auto& c : up) c = char(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& alt : {lo, up}) {
    if (alt == ext) continue;
    const std::string p = path.substr(0, dot) + alt;
    if (fs::is_regular_file(p, ec)) return p;
  }
  return "";
}

// The image joins the item, decoded first when the reader was asked to (a bad one is a row error instead).
static bool keep_image(BenchItem& item, BenchImage img, const ReadOptions& opt, Errors& errors) {
  if (opt.decode_images) {
    try {
      img.decode();
    } catch (const std::exception& e) {
      errors.add(item.id, std::string("bad image: ") + e.what());
      return false;
    }
  }
  item.images.push_back(std::move(img));
  return true;
}

bool attach_file(BenchItem& item, const std::string& path, const ReadOptions& opt, Errors& errors) {
  const std::string found = existing_variant(path);
  if (found.empty()) {
    errors.add(item.id, "missing image " + path);
    return false;
  }
  BenchImage img;
  img.path = img.name = found;
  return keep_image(item, std::move(img), opt, errors);
}

bool attach_base64(BenchItem& item, const std::string& b64, const std::string& file, const ReadOptions& opt,
                   Errors& errors) {
  auto bytes = base64_decode(b64);
  if (!bytes) {
    errors.add(item.id, "image is not valid base64");
    return false;
  }
  BenchImage img;
  img.bytes = std::move(*bytes);
  img.name = file + " row " + item.id;
  return keep_image(item, std::move(img), opt, errors);
}

std::string join(const std::string& root, const std::string& rel) {
  if (root.empty() || (!rel.empty() && rel[0] == '/')) return rel;
  return (fs::path(root) / rel).string();
}

std::string dir_of(const std::string& path) {
  const auto p = fs::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

void check_unique_column(const Table& t, int column, const std::string& path) {
  std::map<std::string, int64_t> first_line;
  for (const auto& r : t.rows) {
    if (column < 0 || static_cast<size_t>(column) >= r.fields.size()) continue;
    const std::string id = trim(r.fields[static_cast<size_t>(column)]);
    if (id.empty()) continue;
    auto [it, fresh] = first_line.emplace(id, r.line);
    if (!fresh)
      throw std::runtime_error(path + ": " + t.header[static_cast<size_t>(column)] + " '" + id + "' appears twice (lines " +
                               std::to_string(it->second) + " and " + std::to_string(r.line) +
                               "): the later answer would replace the earlier one");
  }
}

}  // namespace files
}  // namespace phantom::eval
