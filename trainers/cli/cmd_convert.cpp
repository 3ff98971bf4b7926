// `phantom convert`: checkpoint tools (merge the LoRA adapters of a training checkpoint into an HF-format model).
#include <cstdio>
#include <cstring>

#include "trainers/cli/args.h"
#include "trainers/cli/commands.h"
#include "trainers/cli/flags.h"
#include "trainers/recipe/lora_stage.h"

namespace phantom::cli {

static const char* kConvertHelp =
    "usage: phantom convert merge-lora --checkpoint DIR --out DIR [--base DIR] [--tokenizer FILE] [--adapter-out DIR]\n"
    "                                  [--threads N]\n\n"
    "  merge-lora       merge the LoRA adapters of a training checkpoint (runs/<name>/checkpoints/step-N) into the\n"
    "                   base weights and write an HF-format model (config.json, model.safetensors, tokenizer);\n"
    "                   a checkpoint without adapters is exported as it is\n"
    "  --checkpoint DIR the training checkpoint (its config.yaml gives the model and the stage's LoRA settings)\n"
    "  --out DIR        where to write the merged model\n"
    "  --base DIR       HF checkpoint whose config.json gives the architecture (default: model.path of the run)\n"
    "  --tokenizer FILE tokenizer to copy and read <IMG_CONTEXT> from (default: data.tokenizer of the run)\n"
    "  --adapter-out DIR also write the adapters alone in PEFT's format (adapter_model.safetensors +\n"
    "                   adapter_config.json, HF module names)\n";

int cmd_convert(int argc, char** argv) {
  if (argc < 3 || !std::strcmp(argv[2], "--help") || !std::strcmp(argv[2], "-h")) {
    std::fputs(kConvertHelp, argc < 3 ? stderr : stdout);
    return argc < 3 ? 2 : 0;
  }
  if (std::strcmp(argv[2], "merge-lora") != 0)
    throw UsageError(std::string("unknown convert subcommand '") + argv[2] + "' (expected merge-lora)");
  Args a = parse_args(argc, argv, 3, {"checkpoint", "out", "base", "tokenizer", "adapter-out", "threads"}, {"help"});
  if (a.has("help")) {
    std::fputs(kConvertHelp, stdout);
    return 0;
  }
  if (!a.positional.empty()) throw UsageError("unexpected argument '" + a.positional[0] + "'");
  if (!a.overrides.empty()) throw UsageError("unexpected argument '" + a.overrides[0] + "'");
  set_threads(threads_flag(a));
  recipe::MergeOptions o;
  o.checkpoint = a.require("checkpoint");
  o.out = a.require("out");
  o.base = a.get("base");
  o.tokenizer = a.get("tokenizer");
  o.adapter_out = a.get("adapter-out");
  auto r = recipe::merge_lora_checkpoint(o);
  std::printf("merged %lld LoRA adapters (stage %s) into %s\n", static_cast<long long>(r.merged), r.stage.c_str(),
              o.out.c_str());
  return 0;
}

}  // namespace phantom::cli
