// Shared pieces of the fuzz pass (fuzz_readers.cpp): a reader under test with its seeds, and file helpers. Each
// fuzz_*.cpp builds the targets of one family of readers.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

namespace phantom::fuzz {

namespace fs = std::filesystem;

inline void write(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

inline std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// One reader: valid seeds (each must be accepted unmutated), how to run an input, and what a rejection must name.
struct Target {
  std::string name;
  std::vector<std::string> seeds;
  std::function<void(const std::string& input)> run;  // writes the input where the reader looks, then reads it
  std::string file_shown;                              // what a rejection must name
};

// tokenizer.json (byte-level and SentencePiece-style BPE), tokenizer.model, tokenizer_config.json added tokens.
std::vector<Target> tokenizer_targets(const fs::path& dir);
// The benchmark readers (TSV, JSON, JSONL, parquet-converted JSONL) through eval::read_benchmark. `images`: the
// directory with a.png and b.jpg; `png`: a.png's bytes (inline base64 images of the TSVs).
std::vector<Target> eval_targets(const fs::path& dir, const fs::path& images, const std::string& png);
// Checkpoint files: state.json and model.safetensors.index.json.
std::vector<Target> checkpoint_targets(const fs::path& dir);

}  // namespace phantom::fuzz
