#include "trainers/recipe/run_config.h"
#include "phantom/model/config_checks.h"

#include <filesystem>
#include <fstream>

#include "phantom/util/atomic_file.h"
#include "phantom/util/files.h"
#include "phantom/util/threads.h"
#include "trainers/eval/benchmarks.h"

namespace phantom::recipe {
namespace fs = std::filesystem;
using config::ConfigError;

// Checks that involve several keys at once; single-key checks live in the visit() of each section.
static void validate(const RunConfig& c) {
  // Names that become directories: the run (<output_dir>/<name>) and each stage (its checkpoint subdirectory).
  if (const std::string p = util::path_name_problem(c.run.name); !p.empty())
    throw ConfigError("config error: run.name: " + p + " (it names the run directory <output_dir>/<name>)");
  for (size_t i = 0; i < c.stages.size(); ++i)
    if (const std::string p = util::path_name_problem(c.stages[i].name); !p.empty())
      throw ConfigError("config error: stages." + std::to_string(i) + ".name: " + p +
                        " (it names the stage's checkpoint and export directories)");
  for (auto [n, key] : {std::pair<int64_t, const char*>{c.run.threads, "run.threads"},
                        std::pair<int64_t, const char*>{c.data.num_workers, "data.num_workers"}})
    if (const std::string problem = util::threads_problem(n, key); !problem.empty())
      throw ConfigError("config error: " + problem);
  const auto& l = c.model.llm;
  if (l.hidden_size % l.num_heads != 0)
    throw ConfigError("config error: model.llm.hidden_size (" + std::to_string(l.hidden_size) +
                      ") must be a multiple of model.llm.num_heads (" + std::to_string(l.num_heads) + ")");
  if (l.num_heads % l.num_kv_heads != 0)
    throw ConfigError("config error: model.llm.num_heads (" + std::to_string(l.num_heads) +
                      ") must be a multiple of model.llm.num_kv_heads (" + std::to_string(l.num_kv_heads) + ")");
  const auto& v = c.model.vision;
  if (v.image_size % v.patch_size != 0)
    throw ConfigError("config error: model.vision.image_size (" + std::to_string(v.image_size) +
                      ") must be a multiple of model.vision.patch_size (" + std::to_string(v.patch_size) + ")");
  if (v.hidden_size % v.num_heads != 0)
    throw ConfigError("config error: model.vision.hidden_size must be a multiple of model.vision.num_heads");
  const int64_t grid = v.image_size / v.patch_size;
  const double side = grid * c.model.downsample_ratio;
  if (side != static_cast<double>(static_cast<int64_t>(side)))
    throw ConfigError("config error: model.downsample_ratio (" + std::to_string(c.model.downsample_ratio) +
                      ") must divide the patch grid (" + std::to_string(grid) + ")");
  validate_model_config(c.model, "config error: model.");  // the remaining bounds (phantom/model/model_config.cpp)
  if (c.optim.min_lr > c.optim.lr)
    throw ConfigError("config error: optim.min_lr must not exceed optim.lr");
  if (!c.validation.benchmark.empty()) {
    try {
      eval::bench_from_name(c.validation.benchmark_kind);
    } catch (const std::exception& e) {
      throw ConfigError(std::string("config error: validation.benchmark_kind: ") + e.what());
    }
  }
  for (size_t i = 0; i < c.stages.size(); ++i) {
    const auto& s = c.stages[i];
    const std::string key = "config error: stages." + std::to_string(i) + ".";
    if (s.trainable.empty() && s.lora.rank == 0)
      throw ConfigError(key + "trainable: empty (list regexes of the parameters to train, e.g. ['.*'])");
    if (s.lora.rank > 0 && s.lora.targets.empty())
      throw ConfigError(key + "lora.targets: empty (list regexes of the Linear names that get adapters)");
    if (s.lora.rank == 0 && s.lora.base_int8)
      throw ConfigError(key + "lora.base_int8: needs lora.rank > 0 (only adapted Linears are stored as int8; "
                              "stages." + std::to_string(i) + ".base_int8 stores every frozen Linear as int8)");
    // A recomputed layer would draw new dropout masks in backward: gradients would not match the forward.
    if (s.lora.rank > 0 && s.lora.dropout > 0 && (c.activation_checkpointing || c.vision_checkpointing))
      throw ConfigError(key + "lora.dropout: must be 0 with " +
                        (c.activation_checkpointing ? "activation_checkpointing" : "vision_checkpointing") +
                        " (recomputation redraws masks)");
    if (!s.reference.empty()) {
      if (!needs_reference(s.loss))
        throw ConfigError(key + "reference: only dpo and ipo stages have a reference model (this stage's loss is " +
                          loss_kind_name(s.loss) + ")");
      if (!fs::exists(s.reference)) throw ConfigError(key + "reference: checkpoint not found: " + s.reference);
    }
  }
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  RunConfig c;
  config::load(c, path, overrides);
  validate(c);
  return c;
}

std::string resolved_yaml(RunConfig& c, const std::string& path, const std::vector<std::string>& overrides) {
  std::string header = "resolved config of " + path;
  for (auto& o : overrides) header += " " + o;
  return config::to_yaml(c, header);
}

std::string prepare_run_dir(RunConfig& c, const std::string& resolved, std::unique_ptr<util::DirLock>& lock) {
  const fs::path dir = fs::path(c.run.output_dir) / c.run.name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create run directory " + dir.string() + ": " + ec.message());
  lock = std::make_unique<util::DirLock>(dir.string());  // before anything in it is written
  util::write_file_atomic((dir / "config.yaml").string(), resolved);
  return dir.string();
}

}  // namespace phantom::recipe
