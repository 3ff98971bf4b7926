// One builder for a model and everything its prompts depend on, shared by the trainer (load_model), `phantom eval`
// and `phantom generate`: the tokenizer, the network (fresh or from a checkpoint), the chat template, the tiling
// (max tiles, thumbnail) and the image rules (placement, multi-image rule), all from one PromptConfig. Training
// passes the data section's settings and they are stored in the model's config, so every export carries them
// (config.json "phantom_prompt"); loading a trained model takes the saved ones, unless an override (a command-line
// flag) replaces one, which is logged.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "data/chat_template.h"
#include "data/images/image.h"
#include "data/tokenizers/tokenizer.h"
#include "phantom/model/model.h"

namespace phantom::recipe {

struct ModelSpec {
  ModelConfig model;                   // model.path: a checkpoint directory; empty: a fresh network of these fields
  std::string tokenizer;               // file or directory; empty: model.path
  std::optional<PromptConfig> prompt;  // training: the data section's; empty: the one saved with the model
  // Field (chat_template, max_tiles, use_thumbnail, image_placement) -> value, over the saved prompt; each logged.
  std::map<std::string, std::string> prompt_overrides;
  std::string answer_tokenization = "in_context";
  // Training: a tokenizer without the image tokens gets them in a copy under this directory (and the new rows a
  // start); the image token's id is always the tokenizer's. Inference (empty): the checkpoint's id when it has one.
  std::string added_tokens_dir;
  c10::Device device{c10::kCPU};
};

struct LoadedModel {
  std::unique_ptr<data::Tokenizer> tok;
  std::string tokenizer_path;  // what was loaded (the patched copy when tokens were added)
  PhantomModel model{nullptr};
  std::unique_ptr<data::SampleEncoder> enc;
  data::TileOptions tiles;
  int32_t pad_id = 0;
};

LoadedModel build_model(const ModelSpec& spec);

// One line for logs: "chatml template, max_tiles 6, thumbnail, image placement prepend, images interleaved (from ...)".
std::string describe(const PromptConfig& p);

}  // namespace phantom::recipe
