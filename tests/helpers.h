// Small shared helpers for the tests: temporary directories and files, source paths.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace phantom::test {

inline std::string source_path(const std::string& rel) { return std::string(PHANTOM_SOURCE_DIR) + "/" + rel; }

// A fresh directory under the system temp dir, removed when the object dies.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("phantom-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name, const std::string& content) const {
    auto p = path / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }
  std::string str(const std::string& name = "") const { return (path / name).string(); }
};

}  // namespace phantom::test
