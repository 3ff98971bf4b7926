// Internal helpers of the benchmark readers: file formats (TSV as pandas reads it, JSON, JSONL, base64) and the
// collection of row errors. Not part of the public API (see benchmarks.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trainers/eval/benchmarks.h"

namespace phantom::eval::files {

using nlohmann::json;

std::string read_text(const std::string& path);  // whole file; a one-line error naming it if unreadable
json read_json(const std::string& path);         // whole file as JSON; parse errors name the file

// JSONL: one JSON value per non-empty line. Lines that do not parse are returned as errors ("line N").
struct JsonLine {
  int64_t line;
  json value;
};
std::vector<JsonLine> read_jsonl(const std::string& path, std::vector<RowError>& errors);

// A tab-separated table as pandas.read_table reads it: first line is the header; a field that starts with '"'
// is quoted (may hold tabs and newlines, "" is a quote). `line` is the 1-based line each row starts on.
struct Table {
  std::vector<std::string> header;
  struct Row {
    int64_t line;
    std::vector<std::string> fields;
  };
  std::vector<Row> rows;
  int column(const std::string& name) const;  // -1 when absent
};
Table read_tsv(const std::string& path);
// Two rows with the same value in `column` (an id): an error naming the file and both lines.
void check_unique_column(const Table& t, int column, const std::string& path);

// Strings pandas reads as NaN by default ("", "nan", "NaN", "None", "NULL", "N/A", ...). The official loaders
// drop options and hints that pandas made NaN, so we treat these strings the same way.
bool pandas_na(const std::string& s);

// Standard base64 (RFC 4648, '=' padding, whitespace ignored); nullopt on any other character or a bad length.
std::optional<std::string> base64_decode(const std::string& text);

std::string trim(const std::string& s);
// An answer written "(B)" that names one of `n_options` choices -> "B" (BLINK, CV-Bench); nullopt otherwise.
std::optional<std::string> parenthesized_letter(const std::string& answer, size_t n_options);
std::string lower(const std::string& s);

// A JSON scalar as text: strings as they are, integers without a decimal point, other numbers via %g;
// nullopt for null, missing keys, arrays and objects.
std::optional<std::string> field(const json& obj, const char* key);

// Collects the row errors of one file, then applies ReadOptions::skip_bad_rows.
class Errors {
 public:
  Errors(std::string file, const ReadOptions& opt) : file_(std::move(file)), opt_(opt) {}
  void add(const std::string& row, const std::string& message) { list_.push_back({file_, row, message}); }
  void add(const RowError& e) { list_.push_back(e); }
  size_t count() const { return list_.size(); }
  // Throws one line naming the file and the first row ids unless skip_bad_rows; otherwise logs and appends the
  // errors to `out`.
  void finish(ReadResult& out);

 private:
  std::string file_;
  const ReadOptions& opt_;
  std::vector<RowError> list_;
};

// item.answer from an answer written "(B)" naming one of item.options; false (the row's error added) otherwise.
bool set_parenthesized_answer(BenchItem& item, const std::string& answer, Errors& errors);
// Adds the image file `path` to the item: a missing file is a row error (returns false). With decode_images the
// file is decoded too, and an undecodable one is an error.
bool attach_file(BenchItem& item, const std::string& path, const ReadOptions& opt, Errors& errors);
// Adds inline base64 image data; bad base64 (or, with decode_images, undecodable bytes) is a row error.
bool attach_base64(BenchItem& item, const std::string& b64, const std::string& file, const ReadOptions& opt,
                   Errors& errors);

// `rel` under `root` (rel unchanged when absolute or root empty).
std::string join(const std::string& root, const std::string& rel);
// The directory of a file ("." for a bare name): the default image root.
std::string dir_of(const std::string& path);
// Where a reader resolves image paths: ReadOptions::image_root when given, else the benchmark's own default.
inline std::string root_or(const ReadOptions& opt, const std::string& fallback) {
  return opt.image_root.empty() ? fallback : opt.image_root;
}

}  // namespace phantom::eval::files
