#include "trainers/recipe/export_tokenizer.h"

#include <filesystem>
#include <set>

namespace phantom::recipe {
namespace fs = std::filesystem;

namespace {

// What a Hugging Face tokenizer directory holds besides the model (transformers' save_pretrained writes these).
const std::set<std::string> kTokenizerFiles = {"tokenizer.json",          "tokenizer.model",   "tokenizer_config.json",
                                               "added_tokens.json",       "special_tokens_map.json", "vocab.json",
                                               "merges.txt",              "chat_template.jinja"};

bool is_tokenizer_file(const std::string& name) {
  // Remote-code tokenizers (InternLM2's tokenization_internlm2.py): transformers needs them next to the config.
  return kTokenizerFiles.count(name) || (name.rfind("tokenization_", 0) == 0 && fs::path(name).extension() == ".py");
}

void copy_into(const fs::path& from, const fs::path& export_dir, const std::string& as) {
  if (written_by_export(as))
    throw std::runtime_error("export " + export_dir.string() + ": the tokenizer file " + from.string() +
                             " would replace the stage's own " + as + "; nothing copied");
  fs::copy_file(from, export_dir / as, fs::copy_options::overwrite_existing);
}

}  // namespace

bool written_by_export(const std::string& name) {
  const auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  return name == "config.json" || name == "generation_config.json" || ends(".safetensors") ||
         ends(".safetensors.index.json") || ends(".bin") || ends(".bin.index.json");
}

void export_tokenizer(const std::string& tokenizer, const std::string& export_dir, const data::Tokenizer& used,
                      const std::vector<std::string>& must_have) {
  const fs::path in(tokenizer), out(export_dir);
  std::vector<std::string> copied;
  if (fs::is_directory(in)) {
    for (const auto& e : fs::directory_iterator(in)) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && is_tokenizer_file(name)) copy_into(e.path(), out, name), copied.push_back(name);
    }
  } else if (in.extension() == ".model") {
    copy_into(in, out, "tokenizer.model");
    copied.push_back("tokenizer.model");
    for (const char* side : {"tokenizer_config.json", "added_tokens.json", "special_tokens_map.json"})
      if (fs::is_regular_file(in.parent_path() / side)) copy_into(in.parent_path() / side, out, side), copied.push_back(side);
  } else {
    copy_into(in, out, "tokenizer.json");
    copied.push_back("tokenizer.json");
  }
  // The export must be self-sufficient: its tokenizer, loaded as `generate` loads it, is the run's.
  std::unique_ptr<data::Tokenizer> back;
  try {
    back = data::load_tokenizer(export_dir);
  } catch (const std::exception& e) {
    throw std::runtime_error("export " + export_dir + ": its tokenizer (copied from " + tokenizer + ") does not load: " + e.what());
  }
  std::string problem;
  if (back->vocab_size() != used.vocab_size())
    problem = std::to_string(back->vocab_size()) + " tokens instead of " + std::to_string(used.vocab_size());
  for (const auto& t : must_have)
    if (problem.empty() && back->token_to_id(t) != used.token_to_id(t))
      problem = "token '" + t + "' is " + (back->token_to_id(t) ? std::to_string(*back->token_to_id(t)) : "missing") +
                " instead of " + (used.token_to_id(t) ? std::to_string(*used.token_to_id(t)) : "missing");
  if (!problem.empty())
    throw std::runtime_error("export " + export_dir + ": its tokenizer (copied from " + tokenizer +
                             ") differs from the one the run trained with: " + problem);
}

}  // namespace phantom::recipe
