// Which annotation format a file looks like, from its first row: so that a file read in the wrong format fails
// with "this looks like conversations: data.format=conversations" instead of one "missing field" per row.
#pragma once

#include <string>

#include "data/data_config.h"

namespace phantom::data {

// "conversations", "preference", "internvl_meta", or "" when the first row fits none (or cannot be read).
// Field names come from cfg.fields.
std::string guess_format(const std::string& path, const DataConfig& cfg);

// "" when `path` looks like cfg.format (or nothing can be told), else one sentence naming the format assumed, the
// one the file looks like, and the key that picks it (`format_key`: "data.format", "stages.1.format", "--format").
std::string format_mismatch_hint(const std::string& path, const DataConfig& cfg, const std::string& format_key);

}  // namespace phantom::data
