// phantom train --config F [key=value ...] [--resume [DIR]]
#include <cstdio>

#include "phantom/cli/args.h"
#include "phantom/cli/commands.h"
#include "phantom/runtime.h"
#include "phantom/util/logf.h"
#include "trainers/run_config.h"

namespace phantom::cli {

static const char* kTrainHelp =
    "usage: phantom train --config FILE [key=value ...] [--resume [CHECKPOINT]]\n\n"
    "  --config FILE    YAML recipe (see configs/); `base: other.yaml` inside it includes another file\n"
    "  key=value        override any config key, e.g. optim.lr=2e-5 data.batch_size=4 stages.1.max_steps=10\n"
    "  --resume [DIR]   continue from the latest checkpoint of the run (or from DIR)\n"
    "  --dry-run        resolve and save the config, then stop\n";

int cmd_train(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"config"}, {"help", "dry-run"}, {"resume"});
  if (a.has("help")) {
    std::fputs(kTrainHelp, stdout);
    return 0;
  }
  if (!a.positional.empty()) throw UsageError("unexpected argument '" + a.positional[0] + "' (overrides are key=value)");
  const std::string path = a.require("config");
  train::RunConfig cfg = train::load_run_config(path, a.overrides);
  const std::string resolved = train::resolved_yaml(cfg, path, a.overrides);
  std::fputs(resolved.c_str(), stdout);
  const std::string dir = train::prepare_run_dir(cfg, resolved);
  log::info("run directory: {} (resolved config saved as config.yaml)", dir);
  const int threads = set_threads(cfg.run.threads);
  log::info("intra-op threads: {}", threads);
  if (a.has("dry-run")) return 0;
  return not_yet_available("train", "issue 6 (trainers)");
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
