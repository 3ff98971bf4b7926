#include "trainers/recipe/train_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <fstream>
#include <nlohmann/json.hpp>

#include "phantom/io/checkpoint.h"
#include "phantom/util/atomic_file.h"

namespace phantom::train {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%06lld", static_cast<long long>(step));
  return buf;
}

void fsync_file(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd >= 0) ::fsync(fd), ::close(fd);
}

}  // namespace

void save_checkpoint(const std::string& run_dir, torch::nn::Module& model, torch::optim::Optimizer* opt,
                     const TrainState& st, const std::string& resolved_config, int64_t keep_last) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const fs::path final_dir = root / step_name(st.global_step);
  const fs::path tmp = root / (".tmp-" + step_name(st.global_step) + "-" + std::to_string(::getpid()));
  // Partial directories of a killed earlier writer (one trainer owns a run directory).
  for (auto& e : fs::directory_iterator(root))
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(e.path());
  fs::create_directories(tmp);

  write_checkpoint_tensors((tmp / "model.safetensors").string(), module_state_dict(model));
  if (opt) torch::save(*opt, (tmp / "optimizer.pt").string());
  auto rng = at::detail::getDefaultCPUGenerator().get_state();
  write_checkpoint_tensors((tmp / "rng.safetensors").string(), {{"cpu", rng}});
  json j = {{"stage", st.stage},           {"stage_step", st.stage_step}, {"global_step", st.global_step},
            {"stage_total", st.stage_total}, {"stage_done", st.stage_done},
            {"data", {{"epoch", st.data.epoch}, {"batch", st.data.batch}, {"global_batch", st.global_batch},
                      {"grad_accum", st.grad_accum}}}};
  if (!st.ref_identity.empty()) j["ref_identity"] = st.ref_identity;
  util::write_file_atomic((tmp / "config.yaml").string(), resolved_config);
  util::write_file_atomic((tmp / "state.json").string(), j.dump(2) + "\n");  // written last: marks completeness
  for (auto& e : fs::directory_iterator(tmp)) fsync_file(e.path());
  util::fsync_dir(tmp.string());
  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a re-run of the same step replaces it
  fs::rename(tmp, final_dir);
  util::fsync_dir(root.string());

  // keep-last-K: delete the oldest complete checkpoints beyond K (never the one just written).
  std::vector<fs::path> all;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0) all.push_back(e.path());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i)
    if (all[i] != final_dir) fs::remove_all(all[i]);
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::exists(root)) return std::nullopt;
  std::vector<fs::path> all;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0 && fs::exists(e.path() / "state.json"))
      all.push_back(e.path());
  if (all.empty()) return std::nullopt;
  std::sort(all.begin(), all.end());
  return all.back().string();
}

TrainState read_train_state(const std::string& dir) {
  const auto path = fs::path(dir) / "state.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("not a checkpoint (no state.json): " + dir);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error(path.string() + ": unreadable: " + e.what());
  }
  TrainState st;
  st.stage = j.at("stage");
  st.stage_step = j.at("stage_step");
  st.global_step = j.at("global_step");
  st.stage_total = j.at("stage_total");
  st.stage_done = j.at("stage_done");
  st.data.epoch = j.at("data").at("epoch");
  st.data.batch = j.at("data").at("batch");
  st.global_batch = j.at("data").value("global_batch", int64_t{0});
  st.grad_accum = j.at("data").value("grad_accum", int64_t{0});
  st.ref_identity = j.value("ref_identity", std::string());
  return st;
}

void load_checkpoint_model(const std::string& dir, torch::nn::Module& model) {
  auto sd = read_checkpoint_tensors((fs::path(dir) / "model.safetensors").string());
  load_state_dict(model, sd, /*strict=*/true);
  auto rng = read_checkpoint_tensors((fs::path(dir) / "rng.safetensors").string());
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(rng.at("cpu"));
}

void load_checkpoint_optimizer(const std::string& dir, torch::optim::Optimizer& opt) {
  const auto p = fs::path(dir) / "optimizer.pt";
  if (!fs::exists(p))
    throw std::runtime_error(p.string() + " is missing: this checkpoint cannot resume its stage exactly (a fresh AdamW "
                             "would silently change the run); resume from another checkpoint");
  torch::load(opt, p.string());
}

}  // namespace phantom::train
