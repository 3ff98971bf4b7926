#include "data/sample_set.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "phantom/util/files.h"

namespace phantom::data {

// ---- the map ----------------------------------------------------------------------------------------------------

MappedFile::MappedFile(const std::string& path) : path_(path) {
  if (const std::string problem = util::file_problem(path); !problem.empty())
    throw std::runtime_error("cannot read annotation file " + path + ": " + problem);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a FIFO swapped in never blocks
  if (fd < 0) throw std::runtime_error("cannot read annotation file " + path + ": " + std::strerror(errno));
  struct stat st {};
  const bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (!ok) {
    ::close(fd);
    throw std::runtime_error("cannot read annotation file " + path + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("cannot map annotation file " + path + ": " + std::strerror(err));
    data_ = static_cast<const char*>(p);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

void MappedFile::release(size_t end) const {
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  end = std::min(end, size_) / page * page;
  if (data_ && end > 0) ::madvise(const_cast<char*>(data_), end, MADV_DONTNEED);
}

// ---- scanners ---------------------------------------------------------------------------------------------------

namespace {
constexpr size_t kProgressBytes = size_t(64) << 20;  // how often a scan reports the bytes it is done with
}

void scan_json_array(std::string_view text, const std::string& file,
                     const std::function<void(size_t, size_t, int64_t)>& on_element,
                     const std::function<void(size_t)>& progress) {
  size_t i = 0, next_progress = kProgressBytes, elements = 0;
  int64_t line = 1;
  auto skip_ws = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) line += text[i++] == '\n';
  };
  auto fail = [&](const std::string& what) { throw std::runtime_error(file + ":" + std::to_string(line) + ": " + what); };
  skip_ws();
  if (i >= text.size() || text[i] != '[') fail("expected a JSON array");
  ++i;
  // Elements separated by exactly one comma: a trailing comma ("[{...},]"), a missing one ("{...} {...}") or a
  // doubled one are errors, as for any JSON parser (the elements are parsed one by one, so this is checked here).
  bool expect_element = true;
  while (true) {
    skip_ws();
    if (i >= text.size()) fail("unterminated JSON array (no closing ']')");
    if (text[i] == ']') {
      if (expect_element && elements > 0) fail("trailing comma before ']'");
      ++i;
      break;
    }
    if (text[i] == ',') {
      if (expect_element) fail(elements == 0 ? "comma before the first element" : "two commas in a row");
      expect_element = true;
      ++i;
      continue;
    }
    if (!expect_element) fail("missing comma between array elements");
    expect_element = false;
    const size_t begin = i;
    const int64_t begin_line = line;
    int depth = 0;
    bool in_str = false;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '\n') ++line;
      if (in_str) {
        if (c == '\\') ++i;  // the escaped character (a quote, a backslash) never ends the string
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
    on_element(begin, i, begin_line);
    ++elements;
    if (progress && i >= next_progress) progress(begin), next_progress = i + kProgressBytes;
  }
  skip_ws();
  if (i < text.size()) fail("unexpected text after the closing ']'");
}

void scan_jsonl(std::string_view text, const std::function<void(size_t, size_t, int64_t)>& on_row,
                const std::function<void(size_t)>& progress) {
  size_t next_progress = kProgressBytes;
  int64_t line = 0;
  for (size_t pos = 0; pos < text.size();) {
    const void* nl = std::memchr(text.data() + pos, '\n', text.size() - pos);
    const size_t end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - text.data()) : text.size();
    ++line;
    size_t last = end;
    if (last > pos && text[last - 1] == '\r') --last;  // CRLF
    bool blank = true;
    for (size_t k = pos; k < last && blank; ++k) blank = text[k] == ' ' || text[k] == '\t' || text[k] == '\r';
    if (!blank) on_row(pos, last, line);
    pos = end + 1;
    if (progress && pos >= next_progress) progress(pos), next_progress = pos + kProgressBytes;
  }
}

std::vector<size_t> repeated_rows(size_t n, double repeat, uint64_t seed, const std::string& name) {
  std::vector<size_t> out;
  const auto whole = static_cast<int64_t>(repeat);
  for (int64_t r = 0; r < whole; ++r)
    for (size_t i = 0; i < n; ++i) out.push_back(i);
  // A seeded subset for the fractional part (InternVL samples a fraction the same way).
  const auto extra = static_cast<size_t>((repeat - static_cast<double>(whole)) * static_cast<double>(n));
  if (extra > 0) {
    std::vector<size_t> idx(n);
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::mt19937_64 rng(seed ^ std::hash<std::string>{}(name));
    for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[rng() % i]);
    idx.resize(extra);
    std::sort(idx.begin(), idx.end());
    out.insert(out.end(), idx.begin(), idx.end());
  }
  return out;
}

// ---- indexing ---------------------------------------------------------------------------------------------------

namespace {
// Characters of a parsed sample's text, for the length estimate: question and chosen answer, every turn, and a
// multi-turn preference row's earlier turns.
size_t text_chars(const Sample& s) {
  size_t chars = s.question.size() + s.chosen.size();
  for (auto& t : s.turns) chars += t.text.size();
  for (auto& t : s.context) chars += t.text.size();
  return chars;
}
}  // namespace

IndexedFile index_file(const std::string& path, const std::string& field_image) {
  IndexedFile f;
  f.map = std::make_shared<MappedFile>(path);
  const std::string_view text = f.map->view();
  const size_t first = text.find_first_not_of(" \t\r\n");
  f.array = first != std::string_view::npos && text[first] == '[';
  const std::string image_key = "\"" + field_image + "\"";
  const std::string_view placeholder = "<image>";
  auto add = [&](size_t begin, size_t end, int64_t line) {
    if (end - begin > UINT32_MAX) throw std::runtime_error(path + ":" + std::to_string(line) + ": a row over 4 GiB");
    RowRef r;
    r.begin = begin, r.line = static_cast<uint64_t>(line), r.size = static_cast<uint32_t>(end - begin);
    r.chars = r.size, r.element = static_cast<uint32_t>(f.rows.size());
    const std::string_view row = text.substr(begin, end - begin);
    size_t images = 0;
    for (size_t p = row.find(placeholder); p != std::string_view::npos; p = row.find(placeholder, p + placeholder.size())) ++images;
    if (images == 0 && row.find(image_key) != std::string_view::npos) images = 1;
    r.images = static_cast<uint16_t>(std::min<size_t>(images, UINT16_MAX));
    f.rows.push_back(r);
  };
  // The pages already scanned are dropped from this process as the scan goes: a 2.65 GB file never becomes
  // 2.65 GB of this rank's resident memory (it stays in the page cache for the rows read later).
  auto progress = [&](size_t done) { f.map->release(done); };
  try {
    if (f.array) scan_json_array(text, path, add, progress);
    else scan_jsonl(text, add, progress);
  } catch (const std::runtime_error& e) {
    throw DataError(path, "malformed JSON", e.what());  // the whole file is unreadable: never skippable
  }
  f.map->release(text.size());
  return f;
}

std::string row_where(const std::string& path, const RowRef& r, bool array) {
  std::string w = path + ":" + std::to_string(r.line);
  if (array) w += " (array index " + std::to_string(r.element) + ")";
  return w;
}

SampleSet::SampleSet(std::vector<Sample> samples, bool preference)
    : memory_(std::make_shared<const std::vector<Sample>>(std::move(samples))), preference_(preference) {}

SampleSet SampleSet::index(const std::string& path, const DataConfig& cfg, SkipCounts& skipped, uint64_t seed,
                           uint64_t check_rows_up_to) {
  SampleSet set;
  const auto sources = annotation_sources(path, cfg);
  // Triples when every file holds them (a meta file's datasets each have their own format).
  set.preference_ = !sources.empty();
  for (const auto& src : sources) set.preference_ = set.preference_ && src.cfg.format == "preference";
  for (const auto& src : sources) {
    IndexedFile f = index_file(src.path, src.cfg.fields.image);
    auto file = std::make_shared<File>();
    file->map = f.map, file->array = f.array, file->image_root = src.image_root;
    file->cfg = std::make_shared<const DataConfig>(src.cfg);
    if (set.files_.size() >= UINT16_MAX) throw std::runtime_error(path + ": more than 65535 annotation files");
    const auto fi = static_cast<uint16_t>(set.files_.size());
    set.files_.push_back(file);
    std::vector<RowRef> rows = std::move(f.rows);
    const bool check_rows = f.map->view().size() <= check_rows_up_to;
    set.checked_ = set.checked_ && check_rows;
    if (check_rows) {
      // Every row parsed once, now: bad rows fail or are counted here and left out; the kept ones get their exact
      // text length and image count for length grouping.
      std::vector<RowRef> good;
      for (auto& r : rows) {
        const std::string where = row_where(src.path, r, f.array);
        try {
          const Sample s = parse_row(f.map->view().substr(r.begin, r.size), where, src.cfg, src.image_root);
          r.chars = static_cast<uint32_t>(std::min<size_t>(text_chars(s), UINT32_MAX));
          r.images = static_cast<uint16_t>(std::min<size_t>(s.images.size(), UINT16_MAX));
          good.push_back(r);
        } catch (const DataError& e) {
          if (cfg.on_error == "fail") throw;
          skipped.add(e.reason, e.what());
        }
      }
      rows = std::move(good);
    }
    for (auto& r : rows) r.file = fi;
    if (src.repeat == 1.0) {
      set.rows_.insert(set.rows_.end(), rows.begin(), rows.end());
    } else {
      for (size_t i : repeated_rows(rows.size(), src.repeat, seed, src.name)) set.rows_.push_back(rows[i]);
    }
  }
  return set;
}

Sample SampleSet::at(size_t i) const {
  if (memory_) return memory_->at(i);
  const RowRef& r = rows_.at(i);
  const File& f = *files_[r.file];
  const std::string where = row_where(f.map->path(), r, f.array);
  return parse_row(f.map->view().substr(r.begin, r.size), where, *f.cfg, f.image_root);
}

int64_t SampleSet::estimated_length(size_t i, int64_t tokens_per_image) const {
  if (memory_) {
    const Sample& s = (*memory_)[i];
    return static_cast<int64_t>(text_chars(s) / 4) + static_cast<int64_t>(s.images.size()) * tokens_per_image;
  }
  const RowRef& r = rows_[i];
  return static_cast<int64_t>(r.chars / 4) + static_cast<int64_t>(r.images) * tokens_per_image;
}

}  // namespace phantom::data
