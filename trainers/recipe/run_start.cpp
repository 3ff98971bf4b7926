#include "trainers/recipe/run_start.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <random>
#include <set>
#include <stdexcept>

#include "trainers/recipe/train_state.h"

namespace phantom::recipe {
namespace fs = std::filesystem;

namespace {

std::string names(const std::vector<CheckpointEntry>& cs) {
  std::string s;
  for (const auto& c : cs) s += (s.empty() ? "" : ", ") + fs::path(c.path).filename().string();
  return s;
}

// The earlier run's outputs that --overwrite deletes: its checkpoints, metrics, TensorBoard events, benchmark
// answers and the export directories of this config's stages. Nothing else in the directory is touched.
std::vector<std::string> previous_outputs(const std::string& run_dir, const std::vector<std::string>& stage_names) {
  std::vector<std::string> out;
  std::vector<std::string> entries = {"checkpoints", "metrics.jsonl", "tb", "benchmark"};
  entries.insert(entries.end(), stage_names.begin(), stage_names.end());
  for (const auto& e : entries)
    if (!e.empty() && fs::exists(fs::path(run_dir) / e)) out.push_back((fs::path(run_dir) / e).string());
  return out;
}

}  // namespace

StartPlan plan_start(const std::string& run_dir, const StartRequest& req, const std::vector<std::string>& stage_names) {
  StartPlan plan;
  if (req.overwrite && !req.resume.empty())
    throw std::invalid_argument("--overwrite starts the run over; it cannot be combined with --resume");
  const auto all = list_checkpoints(run_dir);
  std::set<std::string> ids;
  for (const auto& c : all) ids.insert(c.run_id);
  const std::string here = run_dir + "/checkpoints";

  if (req.overwrite) {
    plan.clear = previous_outputs(run_dir, stage_names);
    plan.note = plan.clear.empty() ? "--overwrite: nothing of an earlier run in " + run_dir
                                   : "--overwrite: the earlier run's outputs in " + run_dir + " are deleted (" +
                                         std::to_string(all.size()) + " checkpoint(s))";
    return plan;
  }
  if (req.resume.empty()) {
    if (!all.empty())
      throw std::runtime_error(run_dir + " holds checkpoints of an earlier run (" + names(all) + "): continue it with "
                               "--resume (or --resume auto, which a requeue can repeat), or start over with --overwrite "
                               "(its checkpoints and exports are deleted) or another run.name; nothing was changed");
    return plan;
  }
  if (req.resume == "auto" && all.empty()) {
    plan.note = "--resume auto: no checkpoint in " + here + ", starting the run";
    return plan;
  }
  if (req.resume == "auto" || req.resume == "latest") {
    if (all.empty())
      throw std::runtime_error("--resume: no checkpoint in " + here + " (--resume auto starts the run when there is none)");
    if (ids.size() > 1)
      throw std::runtime_error(here + " holds checkpoints of " + std::to_string(ids.size()) + " runs (" + names(all) +
                               "): resume one explicitly with --resume <checkpoint>, or start over with --overwrite");
    plan.resume = all.back().path;
    plan.note = (req.resume == "auto" ? "--resume auto: " : "--resume: ") + std::string("continuing from ") + plan.resume;
    return plan;
  }
  // An explicit checkpoint. Inside this run directory, checkpoints after it belong to the continuation being
  // abandoned: leaving them would make a later --resume pick them and retention mix both timelines.
  plan.resume = req.resume;
  const TrainState st = read_train_state(req.resume);
  fs::path ckpt = fs::path(req.resume).lexically_normal();
  if (ckpt.filename().empty()) ckpt = ckpt.parent_path();  // "step-000004/"
  std::error_code ec;
  const bool inside = fs::equivalent(ckpt.parent_path(), here, ec);
  if (!inside && !all.empty())
    throw std::runtime_error("--resume " + req.resume + ": " + run_dir + " already holds checkpoints of a run (" +
                             names(all) + "); continue a checkpoint from elsewhere under another run.name, or start "
                             "over here with --overwrite first; nothing was changed");
  if (inside) {
    std::vector<CheckpointEntry> newer;
    for (const auto& c : all)
      if (c.step > st.global_step) newer.push_back(c);
    if (!newer.empty())
      throw std::runtime_error("--resume " + req.resume + ": " + here + " also holds later checkpoints (" + names(newer) +
                               ") of the continuation you would abandon: to branch, copy the checkpoint into a new run "
                               "directory (another run.name) and resume there; nothing was changed");
  }
  plan.note = "--resume: continuing from " + plan.resume;
  return plan;
}

void clear_for_start(const std::string& run_dir, const StartPlan& plan) {
  if (plan.clear.empty()) return;
  for (const auto& e : fs::directory_iterator(run_dir))  // left by a process killed while deleting
    if (e.path().filename().string().rfind(".cleared-", 0) == 0) fs::remove_all(e.path());
  const fs::path trash = fs::path(run_dir) / (".cleared-" + std::to_string(::getpid()));
  fs::create_directories(trash);
  int k = 0;
  for (const auto& p : plan.clear) fs::rename(p, trash / (std::to_string(k++) + "-" + fs::path(p).filename().string()));
  fs::remove_all(trash);
}

std::string new_run_id() {
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm);
  std::random_device rd;
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08x", rd());
  return std::string(when) + "-" + hex;
}

}  // namespace phantom::recipe
