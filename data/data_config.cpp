#include "data/data_config.h"

#include <filesystem>

#include "phantom/util/files.h"

namespace phantom::data {
namespace fs = std::filesystem;

void check_paths(const DataConfig& c) {
  auto need = [](const std::string& value, const char* key) {
    if (value.empty()) return;
    const std::string problem = util::file_problem(value);
    if (problem == "not found") throw config::ConfigError(std::string("config error: ") + key + ": file not found: " + value);
    if (!problem.empty()) throw config::ConfigError(std::string("config error: ") + key + ": " + value + ": " + problem);
  };
  need(c.train, "data.train");
  need(c.val, "data.val");
  std::error_code ec;
  // A tokenizer is a file (tokenizer.json / tokenizer.model) or a directory holding one (data/tokenizers).
  if (!(c.tokenizer.empty() || fs::is_directory(c.tokenizer, ec))) need(c.tokenizer, "data.tokenizer");
  if (!c.image_root.empty() && !fs::is_directory(c.image_root, ec))
    throw config::ConfigError("config error: data.image_root: not a directory: " + c.image_root);
}

}  // namespace phantom::data
