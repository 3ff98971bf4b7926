#include "trainers/recipe/start_point.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/tokenizers/tokenizer.h"
#include "phantom/util/atomic_file.h"

namespace phantom::recipe {
namespace fs = std::filesystem;
using nlohmann::json;

TokenizerPatch add_special_tokens(const std::string& path, const std::vector<std::string>& tokens,
                                  const std::string& out_dir) {
  auto tok = data::load_tokenizer(path);
  TokenizerPatch p{path, {}, tok->vocab_size()};
  int32_t next = static_cast<int32_t>(p.old_size);
  for (const auto& t : tokens)
    if (!tok->token_to_id(t)) p.added.emplace_back(t, next++);
  if (p.added.empty()) return p;

  const fs::path in(path);
  const fs::path bpe = fs::is_directory(in) ? in / "tokenizer.json" : in;
  fs::create_directories(out_dir);
  if (bpe.extension() == ".json" && fs::exists(bpe)) {
    std::ifstream f(bpe);
    json j = json::parse(f);
    for (auto& [content, id] : p.added)
      j["added_tokens"].push_back(json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                                       {"rstrip", false}, {"normalized", false}, {"special", true}});
    p.path = (fs::path(out_dir) / "tokenizer.json").string();
    util::write_file_atomic(p.path, j.dump(2) + "\n");
  } else {  // SentencePiece: the model file and the added tokens the directory loader reads
    const fs::path model = fs::is_directory(in) ? in / "tokenizer.model" : in;
    json added = json::object();
    if (fs::is_directory(in))
      if (std::ifstream a(in / "added_tokens.json"); a) added = json::parse(a, nullptr, false);
    if (!added.is_object()) throw std::runtime_error((in / "added_tokens.json").string() + ": invalid JSON");
    if (fs::is_directory(in))
      if (std::ifstream c(in / "tokenizer_config.json"); c) {
        auto cj = json::parse(c, nullptr, false);
        if (cj.is_object() && cj.contains("added_tokens_decoder"))
          for (auto& [id, t] : cj["added_tokens_decoder"].items()) added[t.value("content", "")] = std::stoi(id);
      }
    for (auto& [content, id] : p.added) added[content] = id;
    fs::copy_file(model, fs::path(out_dir) / "tokenizer.model", fs::copy_options::overwrite_existing);
    util::write_file_atomic((fs::path(out_dir) / "added_tokens.json").string(), added.dump(2) + "\n");
    p.path = out_dir;
  }
  return p;
}

namespace {

// A matrix with at least `rows` rows (new rows zero), the old rows copied.
at::Tensor grown(const at::Tensor& w, int64_t rows) {
  if (w.size(0) >= rows) return w.detach().clone();
  auto out = torch::zeros({rows, w.size(1)}, w.options());
  out.narrow(0, 0, w.size(0)).copy_(w.detach());
  return out;
}

}  // namespace

std::string init_token_rows(PhantomModelImpl& model, const std::vector<int32_t>& ids, int64_t mean_of, int64_t min_rows) {
  torch::NoGradGuard ng;
  auto& lm = *model.language_model;
  const int64_t before = lm.embed_tokens->weight.size(0);
  const int64_t rows = std::max(before, min_rows);
  auto set_rows = [&](at::Tensor& param) {
    auto w = grown(param, rows);
    auto mean = w.narrow(0, 0, std::min(mean_of, before)).mean(0);
    for (auto id : ids) w[id].copy_(mean);
    param.set_data(w);
  };
  set_rows(lm.embed_tokens->weight);
  if (lm.lm_head) {
    set_rows(lm.lm_head->weight);
    lm.lm_head->out_features = rows;
  }
  lm.cfg.vocab_size = model.cfg.llm.vocab_size = rows;
  std::string s = "rows of ids";
  for (auto id : ids) s += " " + std::to_string(id);
  s += lm.lm_head ? " in the embedding and the LM head" : " in the (tied) embedding";
  s += " initialised as the mean of rows 0.." + std::to_string(std::min(mean_of, before) - 1);
  if (rows > before) s += "; matrices grown from " + std::to_string(before) + " to " + std::to_string(rows) + " rows";
  return s;
}

}  // namespace phantom::recipe
