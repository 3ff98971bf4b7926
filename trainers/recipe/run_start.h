// How a `phantom train` invocation treats its run directory, so that relaunching the same command (by hand or by a
// cluster's requeue) never silently restarts, continues the wrong run or mixes two runs' checkpoints
// (docs/training.md, "Run directories, resume and requeue").
#pragma once

#include <string>
#include <vector>

namespace phantom::recipe {

// What the command line (and run.resume) asked for.
struct StartRequest {
  std::string resume;      // "" (start), "latest", "auto", or a checkpoint directory
  bool overwrite = false;  // --overwrite: start over, the earlier run's outputs deleted
};

// What to do: `resume` is "" for a fresh start or the checkpoint directory to continue; `clear` lists what must be
// deleted before starting (--overwrite: the earlier run's checkpoints and outputs; resuming an older checkpoint:
// the newer checkpoints of the abandoned continuation); `note` says what was decided, for the log.
struct StartPlan {
  std::string resume;
  std::vector<std::string> clear;
  std::string note;
};

// Decides without changing anything. Errors (never silent): a start over checkpoints without --resume or
// --overwrite; --resume (latest) with no checkpoint; --resume of an older checkpoint while newer ones exist (two
// timelines in one directory) without --overwrite; checkpoints of two run ids; --overwrite with --resume.
// `stage_names`: the export directories of this config, cleared by --overwrite with the checkpoints.
StartPlan plan_start(const std::string& run_dir, const StartRequest& req, const std::vector<std::string>& stage_names);

// Deletes `plan.clear` safely: each entry is first renamed into <run_dir>/.cleared-<pid> (atomic: a crash leaves
// the entry whole or out of the way), then that directory is removed. Call it holding the run directory's lock.
void clear_for_start(const std::string& run_dir, const StartPlan& plan);

// A new run's identity, recorded in each of its checkpoints: "<UTC time>-<random hex>".
std::string new_run_id();

}  // namespace phantom::recipe
