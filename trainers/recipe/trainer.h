// The training recipe (trainer.cpp reads top to bottom): every stage of the YAML (SFT, Phantom Optimization, ...)
// in order, with freezing by name patterns, AdamW + warmup/cosine, gradient accumulation normalised by global
// counts, validation, metrics (console, JSONL, TensorBoard), atomic checkpoints, exact resume, and clean stops on
// SIGINT/SIGTERM.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/collate.h"
#include "phantom/model/model.h"
#include "trainers/recipe/run_config.h"

namespace phantom::recipe {

struct RecipeResult {
  std::string run_dir;
  std::string final_model;  // HF-format export of the last stage
  bool interrupted = false;  // stopped by a signal after checkpointing
  std::map<std::string, double> last_metrics;
  std::vector<double> losses;  // every optimiser step's loss, in order (tests assert exact resume with it)
  int64_t ref_passes = 0;      // dpo/ipo reference passes run (0 when the on-disk cache served every stage)
  int64_t global_step = 0;     // optimiser steps applied over all stages (a resumed run continues the count)
  int64_t steps_this_run = 0;  // of them, applied by this invocation
};

// A window for tests (unset in real runs): called at each optimiser step before its forward, with the model as it
// stands and the step's micro-batches. The golden test dumps them so that tests/tools/trajectory_reference.py
// recomputes the losses independently (docs/training.md, "Golden losses").
struct StepView {
  int64_t stage = 0, step = 0;  // the stage's index, and the step within it (0-based)
  PhantomModelImpl& model;
  const std::vector<data::Batch>& micro;
};
using StepWatcher = std::function<void(const StepView&)>;

// `resume`: "" (fresh run), "latest" (newest checkpoint of the run directory) or a checkpoint directory.
// `stop_after_steps` > 0: stop (with a checkpoint) after that many optimiser steps of this invocation, as a
// signal would — used by tests and by `--max-steps`.
RecipeResult run_recipe(RunConfig& cfg, const std::string& run_dir, const std::string& resolved_yaml,
                        const std::string& resume, int64_t stop_after_steps = 0, const StepWatcher& watch = {});

}  // namespace phantom::recipe
