// The samples a stage reads, without holding them: an annotation file is indexed once (the byte range, line and
// array index of every row, found by one sequential pass) and memory-mapped, and a row is parsed when it is read.
// The ranks of a node then share the file through the page cache, and a 2 M-row file costs each rank its index
// (~32 bytes a row), not its parsed rows. Files up to data.upfront_check_mb are also checked row by row when
// they are indexed (bad rows fail or are counted then, and are left out of the index); larger ones are checked
// as each row is read, under the same data.on_error policy. `phantom data check` checks every row of any file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/annotations.h"

namespace phantom::data {

// A read-only memory map of a whole regular file (an empty file maps to an empty view).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // errors: std::runtime_error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view view() const { return {data_, size_}; }
  // Drops this process's pages of [0, end) (they stay in the page cache): a sequential pass over a large file
  // then never holds more than the part it is reading.
  void release(size_t end) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// One row of an annotation file: where its bytes are, and what length grouping needs before it is parsed.
struct RowRef {
  uint64_t begin = 0;     // byte offset in its file
  uint64_t line = 0;      // 1-based line the row starts on
  uint32_t size = 0;      // bytes
  uint32_t chars = 0;     // text characters for the length estimate (exact when the row was parsed, else `size`)
  uint32_t element = 0;   // JSON arrays: the element's index in the array (0-based); JSONL: unused
  uint16_t file = 0;      // index into the set's files
  uint16_t images = 0;    // images of the row (exact when parsed, else its "<image>" placeholders, at least 1
                          // when the row holds the image field)
};

// Top-level elements of a JSON array text, found without parsing them: strings and their escapes are skipped,
// brackets and braces inside strings do not count. `on_element(begin, end, line)` is called for each element;
// `progress(offset)` now and then with the offset all earlier bytes are done with. Errors (a trailing or missing
// comma, an unterminated array, text after it) throw std::runtime_error("file:line: what").
void scan_json_array(std::string_view text, const std::string& file,
                     const std::function<void(size_t begin, size_t end, int64_t line)>& on_element,
                     const std::function<void(size_t offset)>& progress = {});

// Non-empty lines of a JSONL text: `on_row(begin, end, line)`, a trailing '\r' excluded (CRLF files).
void scan_jsonl(std::string_view text, const std::function<void(size_t begin, size_t end, int64_t line)>& on_row,
                const std::function<void(size_t offset)>& progress = {});

class SampleSet {
 public:
  SampleSet() = default;
  // Samples already in memory (benchmarks, tests).
  explicit SampleSet(std::vector<Sample> samples, bool preference);

  // Indexes `path` (JSON array, JSONL, or an InternVL meta file and the files it names, with their repeats) read
  // with cfg's format and field map. File-level problems (not found, not JSON, a broken array) throw. The rows of
  // a file of at most `check_rows_up_to` bytes are checked here (bad ones fail or are counted in `skipped` per
  // cfg.on_error, and left out); those of a larger file when they are read.
  static SampleSet index(const std::string& path, const DataConfig& cfg, SkipCounts& skipped, uint64_t seed,
                         uint64_t check_rows_up_to);

  size_t size() const { return memory_ ? memory_->size() : rows_.size(); }
  bool empty() const { return size() == 0; }
  bool preference() const { return preference_; }  // rows are triples (format preference)
  bool indexed() const { return !memory_; }
  bool checked() const { return checked_; }  // every row was checked when indexed (or is in memory)
  // Sample i, parsed now (thread-safe). A bad row throws DataError naming its file:line.
  Sample at(size_t i) const;
  // Rough token length of sample i for length grouping: characters / 4 + images x tokens_per_image.
  int64_t estimated_length(size_t i, int64_t tokens_per_image) const;

 private:
  struct File {
    std::shared_ptr<const MappedFile> map;
    std::shared_ptr<const DataConfig> cfg;  // its format and field map (an InternVL meta's files: conversations)
    std::string image_root;
    bool array = false;
  };
  std::shared_ptr<const std::vector<Sample>> memory_;
  std::vector<std::shared_ptr<const File>> files_;
  std::vector<RowRef> rows_;
  bool preference_ = false;
  bool checked_ = true;
};

// One file's rows, unchecked. Throws DataError(path, "malformed JSON") when the file is no JSON array or JSONL.
struct IndexedFile {
  std::shared_ptr<const MappedFile> map;
  bool array = false;
  std::vector<RowRef> rows;
};
IndexedFile index_file(const std::string& path, const std::string& field_image);

// "file:line" of a row, and " (array index k)" for an element of a JSON array (a one-line array's line is 1).
std::string row_where(const std::string& path, const RowRef& r, bool array);

// Which rows of a file of `n` rows a dataset repeated `repeat` times reads (InternVL's repeat_time): every row
// `floor(repeat)` times, then a seeded subset of floor(fraction x n) rows in file order.
std::vector<size_t> repeated_rows(size_t n, double repeat, uint64_t seed, const std::string& name);

}  // namespace phantom::data
