// state.json, the checkpoint's record of where the run stands (train_state.h): written by save_checkpoint, read
// back on resume. On its own so that the reader can be compiled alone (the sanitizer fuzz pass, tests/fuzz).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "trainers/recipe/train_state.h"

namespace phantom::recipe {
namespace fs = std::filesystem;
using nlohmann::json;

std::string train_state_json(const TrainState& st) {
  json j = {{"stage", st.stage},           {"stage_step", st.stage_step}, {"global_step", st.global_step},
            {"stage_total", st.stage_total}, {"stage_done", st.stage_done},
            {"data", {{"epoch", st.data.epoch}, {"batch", st.data.batch}, {"global_batch", st.global_batch},
                      {"grad_accum", st.grad_accum}, {"base_global_batch", st.base_global_batch}}}};
  if (!st.ref_identity.empty()) j["ref_identity"] = st.ref_identity;
  if (!st.run_id.empty()) j["run_id"] = st.run_id;
  return j.dump(2) + "\n";
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
  // Each field checked by name and type: a hand-edited or corrupt state.json says which field is wrong.
  auto field = [&](const json& obj, const char* key, const std::string& shown) -> const json& {
    if (!obj.is_object() || !obj.contains(key))
      throw std::runtime_error(path.string() + ": missing field '" + shown + "' (not a complete checkpoint?)");
    return obj.at(key);
  };
  auto integer = [&](const json& obj, const char* key, const std::string& shown) {
    const json& v = field(obj, key, shown);
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      throw std::runtime_error(path.string() + ": field '" + shown + "' must be a non-negative integer, got " + v.dump());
    return v.get<int64_t>();
  };
  TrainState st;
  st.stage = integer(j, "stage", "stage");
  st.stage_step = integer(j, "stage_step", "stage_step");
  st.global_step = integer(j, "global_step", "global_step");
  st.stage_total = integer(j, "stage_total", "stage_total");
  const json& done = field(j, "stage_done", "stage_done");
  if (!done.is_boolean())
    throw std::runtime_error(path.string() + ": field 'stage_done' must be true or false, got " + done.dump());
  st.stage_done = done.get<bool>();
  const json& d = field(j, "data", "data");
  st.data.epoch = integer(d, "epoch", "data.epoch");
  st.data.batch = integer(d, "batch", "data.batch");
  // Written since the batch geometry is checked on resume; absent (0) in older checkpoints.
  st.global_batch = d.contains("global_batch") ? integer(d, "global_batch", "data.global_batch") : 0;
  st.grad_accum = d.contains("grad_accum") ? integer(d, "grad_accum", "data.grad_accum") : 0;
  st.base_global_batch = d.contains("base_global_batch") ? integer(d, "base_global_batch", "data.base_global_batch") : 0;
  if (j.contains("run_id") && j["run_id"].is_string()) st.run_id = j["run_id"].get<std::string>();
  if (j.contains("ref_identity")) {
    if (!j["ref_identity"].is_string())
      throw std::runtime_error(path.string() + ": field 'ref_identity' must be a string, got " + j["ref_identity"].dump());
    st.ref_identity = j["ref_identity"].get<std::string>();
  }
  return st;
}

}  // namespace phantom::recipe
