// phantom train --config F [key=value ...] [--resume [DIR]]
#include <cstdio>
#include <filesystem>

#include "trainers/cli/args.h"
#include "trainers/cli/commands.h"
#include "phantom/model/runtime.h"
#include "phantom/util/logf.h"
#include "trainers/distributed/world.h"
#include "trainers/recipe/run_config.h"
#include "trainers/recipe/trainer.h"

namespace phantom::cli {

static const char* kTrainHelp =
    "usage: phantom train --config FILE [key=value ...] [--resume [CHECKPOINT]]\n\n"
    "  --config FILE    YAML recipe (see configs/); `base: other.yaml` inside it includes another file\n"
    "  key=value        override any config key, e.g. optim.lr=2e-5 data.batch_size=4 stages.1.max_steps=10\n"
    "  --resume [DIR]   continue from the latest checkpoint of the run (or from DIR)\n"
    "  --dry-run        resolve and save the config, then stop\n"
    "  --max-steps N    stop (with a checkpoint) after N optimiser steps of this invocation\n";

int cmd_train(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"config", "max-steps"}, {"help", "dry-run"}, {"resume"});
  if (a.has("help")) {
    std::fputs(kTrainHelp, stdout);
    return 0;
  }
  if (!a.positional.empty()) throw UsageError("unexpected argument '" + a.positional[0] + "' (overrides are key=value)");
  const std::string path = a.require("config");
  // Under torchrun: "[rank r/n]" on every line, and only rank 0 logs below warnings or writes files.
  const auto launch = util::launch_env();
  const bool rank0 = !launch || launch->rank == 0;
  if (launch && launch->world > 1) log::init(launch->rank, launch->world, !rank0);
  train::RunConfig cfg = train::load_run_config(path, a.overrides);
  const std::string resolved = train::resolved_yaml(cfg, path, a.overrides);
  if (rank0) std::fputs(resolved.c_str(), stdout);
  std::unique_ptr<util::DirLock> lock;  // held until the process ends
  const std::string dir = rank0 ? train::prepare_run_dir(cfg, resolved, lock)
                                : (std::filesystem::path(cfg.run.output_dir) / cfg.run.name).string();
  log::info("run directory: {} (resolved config saved as config.yaml)", dir);
  const int threads = set_threads(cfg.run.threads);
  log::info("intra-op threads: {}", threads);
  if (a.has("dry-run")) return 0;
  const std::string resume = a.options.count("resume") ? a.get("resume") : (a.switches.count("resume") ? "latest" : "");
  train::RecipeResult result;
  try {
    result = train::run_recipe(cfg, dir, resolved, resume, std::stoll(a.get("max-steps", "0")));
  } catch (const std::exception& e) {
    train::fail_if_distributed(e);  // data parallel: tell the other ranks, exit 1 ("rank N failed: ...")
    throw;
  }
  if (!rank0) return 0;
  if (result.interrupted) {
    std::printf("stopped early; resume with:\n  build/phantom train --config %s --resume\n", path.c_str());
    return 0;
  }
  std::printf("\ntraining done.\n  final model:  %s\n  metrics:      %s/metrics.jsonl (TensorBoard: %s/tb)\n"
              "  checkpoints:  %s/checkpoints\n",
              result.final_model.c_str(), dir.c_str(), dir.c_str(), dir.c_str());
  if (result.last_metrics.count("benchmark/accuracy"))
    std::printf("  benchmark:    %.2f%% accuracy on %s (answers: %s/benchmark/benchmark.json)\n",
                100 * result.last_metrics["benchmark/accuracy"], cfg.validation.benchmark.c_str(), dir.c_str());
  if (result.last_metrics.count("benchmark/open_accuracy"))
    std::printf("  open questions: %.2f%% name the right item (answers: %s/benchmark/benchmark_open.json)\n",
                100 * result.last_metrics["benchmark/open_accuracy"], dir.c_str());
  return 0;
}

int cmd_config(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"config"}, {"help"});
  if (a.has("help")) {
    std::fputs("usage: phantom config --config FILE [key=value ...]\n  prints the resolved config with comments\n",
               stdout);
    return 0;
  }
  const std::string path = a.require("config");
  train::RunConfig cfg = train::load_run_config(path, a.overrides);
  std::fputs(train::resolved_yaml(cfg, path, a.overrides).c_str(), stdout);
  return 0;
}

}  // namespace phantom::cli
