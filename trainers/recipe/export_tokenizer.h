// The tokenizer an exported model carries, so that `phantom generate` and `phantom eval --model <export>` load it
// on their own (docs/checkpoints.md, "Exports").
#pragma once

#include <string>
#include <vector>

#include "data/tokenizers/tokenizer.h"

namespace phantom::recipe {

// Copies the tokenizer files of `tokenizer` (a directory, tokenizer.json or tokenizer.model) into `export_dir`,
// which the stage has already written:
//   a directory       its tokenizer files (tokenizer.json and tokenizer.model when both are there, the
//                     tokenizer config, added tokens and special-token map, vocab/merges, tokenization_*.py);
//                     nothing else: weights, index and config.json of a checkpoint directory stay behind
//   tokenizer.json    as tokenizer.json
//   a .model file     as tokenizer.model, with the added tokens of its directory (tokenizer_config.json,
//                     added_tokens.json), which the SentencePiece loader reads next to it
// No copied name may be one the stage wrote (model weights, their index, config.json): that is an error, never an
// overwrite. Then the export's tokenizer is loaded back and must equal `used` (size and the `must_have` tokens'
// ids), else an error naming both.
void export_tokenizer(const std::string& tokenizer, const std::string& export_dir, const data::Tokenizer& used,
                      const std::vector<std::string>& must_have);

// Whether `name` is a file an export's writer owns (weights, weight index, model config).
bool written_by_export(const std::string& name);

}  // namespace phantom::recipe
