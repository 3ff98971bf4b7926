// What `phantom data check` and `data bench` build from a run config: the tokenizer, the encoder and the tiling
// of the model the config describes.
#pragma once

#include <memory>

#include "data/annotations.h"
#include "data/chat_template.h"
#include "data/images/image.h"
#include "data/tokenizers/tokenizer.h"
#include "phantom/io/hf_config.h"
#include "trainers/cli/args.h"
#include "trainers/recipe/run_config.h"

namespace phantom::cli {

struct DataSetup {
  recipe::RunConfig cfg;
  ModelConfig mc;
  std::unique_ptr<data::Tokenizer> tok;
  std::unique_ptr<data::SampleEncoder> enc;
  data::TileOptions tiles;

  explicit DataSetup(const Args& a) : cfg(recipe::load_run_config(a.require("config"), a.overrides)) {
    data::check_paths(cfg.data);
    mc = cfg.model;
    if (!mc.path.empty()) read_hf_config(mc.path, mc);
    const int64_t g = mc.vision.image_size / mc.vision.patch_size;
    const auto side = static_cast<int64_t>(g * mc.downsample_ratio);
    tok = data::load_tokenizer(cfg.data.tokenizer);
    enc = std::make_unique<data::SampleEncoder>(*tok, data::ChatTemplate::resolve(cfg.data.chat_template, mc.llm.family),
                                                data::ImageTokens::from_tokenizer(*tok, side * side));
    enc->set_image_placement(cfg.data.image_placement);
    enc->set_multi_image(cfg.data.multi_image);
    enc->set_answer_tokenization(cfg.data.answer_tokenization);
    tiles.tile = static_cast<int>(mc.vision.image_size);
    tiles.max_num = static_cast<int>(cfg.data.max_tiles);
    tiles.use_thumbnail = cfg.data.use_thumbnail;
  }
};

int data_check(const Args& a);  // cmd_data_check.cpp

}  // namespace phantom::cli
