// Reading annotation files into samples: LLaVA/ShareGPT `conversations` (JSON array or JSONL), preference
// triples (question, chosen, one or several rejected) with field names from the config, and InternVL meta files
// (dataset name -> image root, annotation file, repeat ratio). Every sample remembers its file and line, and every
// problem is reported with them: under data.on_error=fail it is an error, under skip it is dropped and counted.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "data/data_config.h"

namespace phantom::data {

struct Turn {
  bool from_user = true;  // user (human) or assistant (gpt)
  std::string text;
};

struct Sample {
  std::string id;
  std::string where;                // "file:line" for messages
  std::vector<std::string> images;  // resolved paths, in order of their <image> placeholders
  std::vector<Turn> turns;          // conversations: alternating user/assistant, starting with the user
  // preference triples (conversations empty): one question, the correct answer, one or more rejected answers
  std::string question, chosen;
  std::vector<std::string> rejected;
  // A multi-turn preference sample: the turns before `question` (user, assistant, ...; even count), a prompt
  // only (never supervised): the preference is on the last assistant turn alone.
  std::vector<Turn> context;
  bool is_preference() const { return turns.empty(); }
};

// Counts of dropped samples by reason ("missing image", "malformed JSON", ...), reported at the end of an epoch.
struct SkipCounts {
  std::map<std::string, int64_t> by_reason;
  std::vector<std::string> examples;  // the first problems in full ("file:line: reason (detail)")
  int64_t total() const;
  void add(const std::string& reason, const std::string& full = "") {
    ++by_reason[reason];
    if (!full.empty() && examples.size() < 1000) examples.push_back(full);
  }
  std::string summary() const;  // "3 skipped: 2 missing image, 1 empty answer"
};

// A bad sample: what is wrong and where. Thrown under on_error=fail.
struct DataError : std::runtime_error {
  DataError(const std::string& where, const std::string& reason, const std::string& detail);
  std::string where, reason;
};

// Reads `path` (JSON array, JSONL, or InternVL meta JSON when cfg.format == internvl_meta) with cfg's field map
// and format, every row parsed and kept (`phantom data check`, `data triples`; training indexes the file instead,
// data/sample_set.h). In the preference format a row is a triple (question, chosen, rejected) or a multi-turn
// conversation whose last assistant turn is the chosen answer (or whose `chosen` field answers its last user turn)
// with `rejected` alternatives to it. A meta file's datasets are conversations or preference rows (MMPR's
// {"image", "question", "chosen", "rejected"}): the dataset's own "format" key, else what its first row looks like;
// image paths are resolved against cfg.image_root (or the meta file's root). Checks done here:
// malformed JSON, missing fields, empty answers, unknown roles, placeholder/image count mismatch, missing
// image files. Under on_error=skip, bad samples are dropped and counted in `skipped`.
std::vector<Sample> read_annotations(const std::string& path, const DataConfig& cfg, SkipCounts& skipped,
                                     uint64_t seed = 0);

// One row's JSON text -> a sample, with every check above (`where` is its "file:line"); a bad row throws DataError.
Sample parse_row(std::string_view json_text, const std::string& where, const DataConfig& cfg,
                 const std::string& image_root);

// The annotation files `path` stands for: itself, or the files an InternVL meta file names, each with its image
// root, format (conversations for a meta's files), repeat and dataset name. Errors name the meta file and key.
struct AnnotationSource {
  std::string path, image_root, name;
  DataConfig cfg;
  double repeat = 1.0;
};
std::vector<AnnotationSource> annotation_sources(const std::string& path, const DataConfig& cfg);

// Top-level elements of a JSON array text with the line each starts on (nlohmann::json gives no positions).
struct JsonSpan {
  size_t begin, end;  // byte range
  int64_t line;       // 1-based
};
std::vector<JsonSpan> split_json_array(std::string_view text, const std::string& file);

}  // namespace phantom::data
