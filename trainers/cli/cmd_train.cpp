// phantom train --config F [key=value ...] [--resume [DIR]]
#include <cstdio>
#include <filesystem>

#include "data/data_config.h"
#include "phantom/io/hf_config.h"
#include "phantom/util/files.h"

#include "trainers/cli/flags.h"
#include "trainers/cli/args.h"
#include "trainers/cli/commands.h"
#include "phantom/model/runtime.h"
#include "phantom/util/logf.h"
#include "trainers/distributed/world.h"
#include "trainers/recipe/run_config.h"
#include "trainers/recipe/run_start.h"
#include "trainers/recipe/train_state.h"
#include "trainers/recipe/trainer.h"

namespace phantom::cli {

static const char* kTrainHelp =
    "usage: phantom train --config FILE [key=value ...] [--resume [auto|CHECKPOINT] | --overwrite]\n\n"
    "  --config FILE    YAML recipe (see configs/); `base: other.yaml` inside it includes another file\n"
    "  key=value        override any config key, e.g. optim.lr=2e-5 data.batch_size=4 stages.1.max_steps=10\n"
    "  --resume         continue from the latest checkpoint of the run (an error when there is none)\n"
    "  --resume auto    continue when the run has a checkpoint, else start it: one command for every requeue\n"
    "                   (run.resume: auto in the config does the same)\n"
    "  --resume DIR     continue from the checkpoint DIR\n"
    "  --overwrite      start over in a run directory that holds checkpoints (they and its exports are deleted);\n"
    "                   without it, starting there is refused\n"
    "  --dry-run        resolve and save the config, then stop\n"
    "  --max-steps N    stop (with a checkpoint) after N optimiser steps of this invocation\n";

// A word for a POSIX shell: as is when it is safe, else in single quotes.
static std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=./:,@%") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

namespace fs = std::filesystem;

// Every input path of the config is a readable regular file (data files, tokenizer, model.path/config.json, which
// is also validated): checked before the run directory is created, so a typo leaves nothing behind.
static void check_run_paths(const recipe::RunConfig& c) {
  // A file without stages is a fine base for includes, not a run: training it would export an untrained model.
  if (c.stages.empty())
    throw config::ConfigError("config error: stages: empty; list at least one training stage (see configs/demo.yaml)");
  data::check_paths(c.data);
  auto need_checkpoint = [](const std::string& dir, const std::string& key) {
    if (dir.empty()) return;
    const fs::path cfg_json = fs::path(dir) / "config.json";
    if (const std::string problem = util::file_problem(cfg_json.string()); !problem.empty())
      throw config::ConfigError("config error: " + key + ": " + cfg_json.string() + ": " + problem +
                        " (expected a Hugging Face checkpoint directory)");
  };
  need_checkpoint(c.model.path, "model.path");
  need_checkpoint(c.model.vision_path, "model.vision_path");
  if (!c.model.path.empty()) {  // its config.json too: a bad architecture fails before the run directory exists
    ModelConfig mc = c.model;
    read_hf_config(c.model.path, mc);
  }
  for (size_t i = 0; i < c.stages.size(); ++i) {
    const std::string key = "stages." + std::to_string(i) + ".";
    need_checkpoint(c.stages[i].init_from, key + "init_from");
    if (!c.stages[i].data.empty())
      if (const std::string problem = util::file_problem(c.stages[i].data); !problem.empty())
        throw config::ConfigError("config error: " + key + "data: " + c.stages[i].data + ": " + problem);
  }
}

int cmd_train(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"config", "max-steps"}, {"help", "dry-run", "overwrite"}, {"resume"});
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
  const int64_t max_steps = int_flag(a, "max-steps", 0, 0);
  recipe::RunConfig cfg = recipe::load_run_config(path, a.overrides);
  check_run_paths(cfg);  // before the run directory exists: a typo leaves nothing behind
  const std::string resolved = recipe::resolved_yaml(cfg, path, a.overrides);
  if (rank0) std::fputs(resolved.c_str(), stdout);
  std::string asked = a.options.count("resume") ? a.get("resume") : (a.switches.count("resume") ? "latest" : "");
  if (asked.empty() && cfg.run.resume == "auto" && !a.has("overwrite")) asked = "auto";
  // What to do with the run directory, decided before anything is written: a start over checkpoints without
  // --resume or --overwrite is refused with every file as it was.
  const std::string run_dir = (std::filesystem::path(cfg.run.output_dir) / cfg.run.name).string();
  std::vector<std::string> stage_names;
  for (const auto& st : cfg.stages) stage_names.push_back(st.name);
  recipe::StartPlan plan;
  try {
    plan = recipe::plan_start(run_dir, {asked, a.has("overwrite")}, stage_names);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (!plan.note.empty()) log::info("{}", plan.note);
  // Resuming a run whose every stage is done: say so and touch nothing (its exports, benchmark files and
  // config.yaml stay as they are). A requeue of a finished run ends here too.
  if (!plan.resume.empty() && !a.has("dry-run")) {
    const auto st = recipe::read_train_state(plan.resume);
    // A held-out benchmark that was interrupted (no benchmark.json yet) is not finished: resuming completes it.
    const bool benchmark_pending = !cfg.validation.benchmark.empty() &&
                                   !std::filesystem::exists(std::filesystem::path(run_dir) / "benchmark" / "benchmark.json");
    if (st.stage_done && st.stage + 1 >= static_cast<int64_t>(cfg.stages.size()) && !benchmark_pending) {
      if (rank0)
        std::printf("%s is finished: all %zu stages are done (last checkpoint %s); nothing was changed.\n"
                    "  evaluate it with `phantom eval --model %s/%s ...`, or train again under a new run.name=...\n",
                    run_dir.c_str(), cfg.stages.size(), plan.resume.c_str(), run_dir.c_str(), cfg.stages.back().name.c_str());
      return 0;
    }
  }
  std::unique_ptr<util::DirLock> lock;  // held until the process ends
  const std::string dir = rank0 ? recipe::prepare_run_dir(cfg, resolved, lock) : run_dir;
  if (rank0 && !a.has("dry-run")) recipe::clear_for_start(dir, plan);  // --overwrite, holding the lock
  log::info("run directory: {} (resolved config saved as config.yaml)", dir);
  const int threads = set_threads(cfg.run.threads);
  log::info("intra-op threads: {}", threads);
  if (a.has("dry-run")) return 0;
  recipe::RecipeResult result;
  try {
    result = recipe::run_recipe(cfg, dir, resolved, plan.resume, max_steps);
  } catch (const std::exception& e) {
    distributed::fail_if_distributed(e);  // data parallel: tell the other ranks, exit 1 ("rank N failed: ...")
    throw;
  }
  if (!rank0) return 0;
  if (result.interrupted) {
    // The same command line, overrides included: without them --resume would continue another run.
    std::string cmd = "build/phantom train --config " + shell_quote(path);
    for (const auto& o : a.overrides) cmd += " " + shell_quote(o);
    std::printf("stopped early; resume with:\n  %s --resume\n", cmd.c_str());
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
  recipe::RunConfig cfg = recipe::load_run_config(path, a.overrides);
  std::fputs(recipe::resolved_yaml(cfg, path, a.overrides).c_str(), stdout);
  return 0;
}

}  // namespace phantom::cli
