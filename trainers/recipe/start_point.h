// Starting a vision-language run from a checkpoint that never saw images (a bare LLM, optionally with an InternViT
// from model.vision_path): the tokenizer gets <img>, </img>, <IMG_CONTEXT> (in a copy under the run directory) and
// the embedding / LM head rows of the new ids start as the mean of the existing rows, as InternVL's fine-tuning
// does; the matrices grow when the tokenizer outgrows them.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "phantom/model/model.h"

namespace phantom::recipe {

struct TokenizerPatch {
  std::string path;                                 // the tokenizer to use (the input when nothing was added)
  std::vector<std::pair<std::string, int32_t>> added;  // tokens added, with their ids
  int64_t old_size = 0;                             // the tokenizer's size before
};

// `path`: tokenizer.json, tokenizer.model or a directory holding one. Tokens already present are kept as they are.
// BPE: writes out_dir/tokenizer.json with the tokens in added_tokens; SentencePiece: out_dir/ with tokenizer.model
// and added_tokens.json.
TokenizerPatch add_special_tokens(const std::string& path, const std::vector<std::string>& tokens,
                                  const std::string& out_dir);

// Rows `ids` of the embedding (and of an untied head) become the mean of rows [0, mean_of); both grow to
// `min_rows` first when smaller. Returns a sentence for the log.
std::string init_token_rows(PhantomModelImpl& model, const std::vector<int32_t>& ids, int64_t mean_of, int64_t min_rows);

}  // namespace phantom::recipe
