// The subcommands of build/phantom, one file each.
#pragma once

#include <memory>

#include "data/chat_template.h"
#include "data/images/image.h"
#include "trainers/cli/args.h"
#include "phantom/model/generate.h"
#include "phantom/model/model.h"

namespace phantom::cli {

int cmd_train(int argc, char** argv);
int cmd_config(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_data(int argc, char** argv);
int cmd_data_triples(int argc, char** argv);  // `phantom data triples`
int cmd_convert(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_gpucheck(int argc, char** argv);
int cmd_plan(int argc, char** argv);

// A model, its tokenizer and prompt encoder, loaded for inference from --model DIR [--tokenizer P] [--device D].
struct Loaded {
  PhantomModel model{nullptr};
  std::unique_ptr<data::Tokenizer> tok;
  std::unique_ptr<data::SampleEncoder> enc;
  data::TileOptions tiles;
};
Loaded load_for_inference(const Args& a);
// --max-new-tokens, --num-beams, --do-sample, --temperature, --top-p, --top-k, --seed
GenerationConfig generation_options(const Args& a);

}  // namespace phantom::cli
