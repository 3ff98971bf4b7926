// build/phantom: one binary, several subcommands. Every error ends as one line on stderr and a non-zero exit.
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "trainers/cli/args.h"
#include "trainers/cli/commands.h"
#include "phantom/model/cpu_allocator.h"
#include "phantom/util/config.h"
#include "phantom/util/log.h"
#include "phantom/util/stop.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

const Command kCommands[] = {
    {"train", phantom::cli::cmd_train, "train a model through the stages of a YAML recipe (SFT, PO, ...)"},
    {"eval", phantom::cli::cmd_eval, "evaluate a model on a paper benchmark (SQA-IMG, MMBench, POPE, MME, ...)"},
    {"generate", phantom::cli::cmd_generate, "answer a prompt about an image with a model"},
    {"data", phantom::cli::cmd_data, "inspect a dataset: `data check` (samples, masks, bad rows), `data bench` (speed)"},
    {"convert", phantom::cli::cmd_convert, "checkpoint tools: merge LoRA, export to Hugging Face format"},
    {"config", phantom::cli::cmd_config, "print the resolved config (includes and overrides applied)"},
    {"info", phantom::cli::cmd_info, "print LibTorch, CUDA and thread information"},
    {"bench", phantom::cli::cmd_bench, "time a training step, PO layouts, decoding or generation (scripts/bench/*.sh)"},
    {"plan", phantom::cli::cmd_plan, "memory of each stage per rank against a device: weights, gradients, AdamW, activations (docs/scale.md)"},
    {"gpucheck", phantom::cli::cmd_gpucheck, "check and time the CUDA path: parity, bf16, NCCL, PO, a 7B-shaped step (docs/gpu.md)"},
};

void usage(FILE* out) {
  std::fprintf(out,
               "phantom: train and evaluate Phantom vision-language models (LibTorch)\n\n"
               "usage: phantom <command> [options] [key=value ...]\n\ncommands:\n");
  for (auto& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out,
               "\n`phantom <command> --help` shows a command's options. Config keys are overridden with dotted\n"
               "key=value arguments, e.g. `phantom train --config configs/demo.yaml optim.lr=2e-5`.\n");
}

}  // namespace

int main(int argc, char** argv) {
  // MKL may otherwise use fewer threads than asked when the machine is busy, which changes summation order:
  // same-seed CPU runs (and exact resume) must not depend on the load of the machine.
  setenv("MKL_DYNAMIC", "FALSE", 0);
  phantom::use_caching_cpu_allocator();  // no page faults for a step's large tensors (phantom/model/cpu_allocator.h)
  phantom::log::init();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage(stdout);
    return argc < 2 ? 1 : 0;
  }
  for (auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc, argv);
    } catch (const phantom::config::ConfigError& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 2;
    } catch (const phantom::cli::UsageError& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 2;
    } catch (const phantom::util::Stopped& e) {  // SIGINT/SIGTERM honoured after saving what could be saved
      std::fprintf(stderr, "stopped: %s\n", e.what());
      return 1;
    } catch (const std::exception& e) {
      // Torch errors carry a multi-line backtrace; the first line is the message.
      std::string msg = e.what();
      const auto nl = msg.find('\n');
      std::fprintf(stderr, "error: %s\n", msg.substr(0, nl).c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "error: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
