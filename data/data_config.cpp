#include "data/data_config.h"

#include <filesystem>

namespace phantom::data {
namespace fs = std::filesystem;

void check_paths(const DataConfig& c) {
  auto need = [](const std::string& value, const char* key) {
    if (!value.empty() && !fs::exists(value))
      throw config::ConfigError(std::string("config error: ") + key + ": file not found: " + value);
  };
  need(c.train, "data.train");
  need(c.val, "data.val");
  need(c.tokenizer, "data.tokenizer");
  if (!c.image_root.empty() && !fs::is_directory(c.image_root))
    throw config::ConfigError("config error: data.image_root: not a directory: " + c.image_root);
}

}  // namespace phantom::data
