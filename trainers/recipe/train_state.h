// Training checkpoints: everything an exact resume needs, written atomically.
//
//   <run>/checkpoints/step-000120/   model.safetensors   all model tensors (our names)
//                                    optimizer.pt        AdamW state (LibTorch archive)
//                                    state.json          stage, steps, data position, RNG, config path
//                                    rng.safetensors     torch's CPU generator state
//                                    config.yaml         the resolved config of the run
//
// A checkpoint is written into a hidden temporary directory, every file fsync'd, then renamed into place and
// the parent fsync'd: a crash (kill -9 included) leaves either the previous set of checkpoints or the new one,
// never a half-written directory that `--resume` would pick.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"

namespace phantom::recipe {

struct TrainState {
  int64_t stage = 0;         // index into cfg.stages
  int64_t stage_step = 0;    // optimiser steps done in this stage
  int64_t global_step = 0;   // over all stages
  int64_t stage_total = 0;   // optimiser steps of this stage
  bool stage_done = false;   // the stage finished (its model was exported)
  data::LoaderPosition data;
  int64_t global_batch = 0;  // samples per micro-batch over all ranks, and micro-batches per step, when it was
  int64_t grad_accum = 0;    // written: a resume with other values would not continue the same data order (0: unknown)
  std::string ref_identity;  // dpo/ipo: identity of this stage's reference model (checks the cache on resume)
  int64_t base_global_batch = 0;  // the global micro-batch of the run's first launch (0: unknown); a resume on
                                  // other ranks keeps base_global_batch x grad_accum samples per step
  std::string run_id;        // the run that wrote it (recipe::new_run_id; empty in older checkpoints)
};

// A complete checkpoint of a run directory (its state.json exists).
struct CheckpointEntry {
  std::string path;
  int64_t step = 0;    // the global step in its name
  std::string run_id;  // from its state.json ("" when older or unreadable)
};

// The complete checkpoints under <run>/checkpoints, oldest to newest by step (the number, not the name's text).
std::vector<CheckpointEntry> list_checkpoints(const std::string& run_dir);

// Keeps the newest `keep_last` checkpoints by step of st.run_id; another run's checkpoints are never deleted.
void save_checkpoint(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer* opt,
                     const TrainState& st, const std::string& resolved_config, int64_t keep_last);

// The newest complete checkpoint under <run>/checkpoints by step, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

// state.json (train_state_json.cpp): the text save_checkpoint writes, and the reader, which checks every field by
// name and type and names the file and field it rejects.
std::string train_state_json(const TrainState& st);
TrainState read_train_state(const std::string& ckpt_dir);
// Restores model tensors and the RNG; the optimiser separately (it must exist first; a checkpoint without its
// optimizer.pt is an error: resuming with a fresh AdamW would not be the same run).
void load_checkpoint_model(const std::string& ckpt_dir, torch::nn::Module& model);
void load_checkpoint_optimizer(const std::string& ckpt_dir, torch::optim::Optimizer& opt);

}  // namespace phantom::recipe
