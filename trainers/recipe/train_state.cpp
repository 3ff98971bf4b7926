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

namespace phantom::recipe {
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

// The optimizer archive through an AtomicFile. torch::save(opt, path) writes with PyTorchStreamWriter, whose
// destructor finishes the zip and throws when the disk is full: an exception from a destructor, so the process
// aborts (exit 134) and leaves the file half-written. Here the writer callback never fails: it keeps the first
// error, drops the rest, and the error is thrown once the archive is done.
static void save_optimizer(torch::optim::Optimizer& opt, const std::string& path) {
  util::AtomicFile file(path);
  std::string error;
  torch::serialize::OutputArchive archive;
  opt.save(archive);
  archive.save_to([&](const void* data, size_t n) -> size_t {
    if (error.empty()) {
      try {
        file.write(data, n);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    return n;
  });
  if (!error.empty()) throw std::runtime_error(error);
  file.commit();
}

void save_checkpoint(const std::string& run_dir, torch::nn::Module& model, torch::optim::Optimizer* opt,
                     const TrainState& st, const std::string& resolved_config, int64_t keep_last) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const fs::path final_dir = root / step_name(st.global_step);
  const fs::path tmp = root / (".tmp-" + step_name(st.global_step) + "-" + std::to_string(::getpid()));
  try {
    fs::create_directories(root);
    // Partial directories of a killed earlier writer (one trainer owns a run directory).
    for (auto& e : fs::directory_iterator(root))
      if (e.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(e.path());
    fs::create_directories(tmp);

    write_checkpoint_tensors((tmp / "model.safetensors").string(), module_state_dict(model));
    if (opt) save_optimizer(*opt, (tmp / "optimizer.pt").string());
    auto rng = at::detail::getDefaultCPUGenerator().get_state();
    write_checkpoint_tensors((tmp / "rng.safetensors").string(), {{"cpu", rng}});
    util::write_file_atomic((tmp / "config.yaml").string(), resolved_config);
    util::write_file_atomic((tmp / "state.json").string(), train_state_json(st));  // written last: marks completeness
    for (auto& e : fs::directory_iterator(tmp)) fsync_file(e.path());
    util::fsync_dir(tmp.string());
  } catch (const std::exception& e) {
    // Disk full, quota, permissions: remove the partial directory (nothing half-written stays for a later run to
    // trip on) and say which checkpoint a resume would use. The checkpoints already written are untouched.
    std::error_code ec;
    fs::remove_all(tmp, ec);
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    const auto last = latest_checkpoint(run_dir);
    throw std::runtime_error("cannot write checkpoint " + final_dir.string() + ": " + msg + "; " +
                             (last ? "the last complete checkpoint, " + *last + ", is intact"
                                   : std::string("no earlier checkpoint exists")) +
                             " (free space in " + root.string() + " or set run.output_dir elsewhere)");
  }
  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a re-run of the same step replaces it
  fs::rename(tmp, final_dir);
  util::fsync_dir(root.string());

  // keep-last-K of this run, newest by step (never the one just written, never another run's).
  std::vector<CheckpointEntry> mine;
  for (auto& c : list_checkpoints(run_dir))
    if (c.run_id == st.run_id) mine.push_back(c);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < mine.size(); ++i)
    if (fs::path(mine[i].path) != final_dir) fs::remove_all(mine[i].path);
}

std::vector<CheckpointEntry> list_checkpoints(const std::string& run_dir) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::vector<CheckpointEntry> all;
  if (!fs::exists(root)) return all;
  for (auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("step-", 0) != 0 || name.size() == 5 ||
        name.find_first_not_of("0123456789", 5) != std::string::npos || !fs::exists(e.path() / "state.json"))
      continue;
    CheckpointEntry c{e.path().string(), std::stoll(name.substr(5)), ""};
    std::ifstream in(e.path() / "state.json");
    const json j = json::parse(in, nullptr, false);
    if (j.is_object() && j.contains("run_id") && j["run_id"].is_string()) c.run_id = j["run_id"].get<std::string>();
    all.push_back(std::move(c));
  }
  std::sort(all.begin(), all.end(), [](const CheckpointEntry& a, const CheckpointEntry& b) { return a.step < b.step; });
  return all;
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  const auto all = list_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back().path;
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
  try {
    torch::load(opt, p.string());
  } catch (const std::exception& e) {  // miniz / unpickler messages name neither the file nor the remedy
    std::string why = e.what();
    why = why.substr(0, why.find('\n'));
    throw std::runtime_error(p.string() + ": cannot read the optimizer state (truncated or corrupt: " + why +
                             "); resume from an earlier checkpoint with --resume <run>/checkpoints/step-N");
  }
}

}  // namespace phantom::recipe
