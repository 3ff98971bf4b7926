// Data parallel training over LibTorch's c10d process groups (Gloo for CPU tensors, NCCL for CUDA), launched by
// torchrun. Three pieces, each used by the recipe in trainers/recipe/trainer.cpp:
//
//   World           the process group of a torchrun launch (TCPStore rendezvous), collectives that fail with a
//                   message naming the rank at fault, and the failure protocol: a rank that throws puts its
//                   message into the store ("error/<rank>") and exits non-zero; the others, when their collective
//                   fails or times out, read it (or find the rank whose heartbeat stopped) and exit with
//                   "rank N failed: <message>".
//   StageOptimizer  AdamW of one stage. Single process: exactly the plain optimiser. Data parallel: gradients are
//                   SUMMED over ranks (the losses are already divided by the global counts) in buckets that are
//                   all-reduced while backward runs (post-accumulate-grad hooks, in a fixed bucket order on every
//                   rank), only on the last micro-batch of an accumulation group. ZeRO-1 (`distributed.zero`):
//                   each rank keeps the AdamW state of its partition of the tensors only, steps it, and broadcasts
//                   the updated tensors; checkpoints gather the full state on rank 0, so any world size resumes.
//                   ZeRO-2 (`distributed.zero_stage: 2`): each bucket is reduced to the owners of its tensors
//                   instead of all-reduced, and the other ranks drop those gradients, so a rank keeps only the
//                   gradients of its partition (at most 2 bucket buffers in flight); clipping combines the
//                   owners' norms over ranks.
//   sum_over_ranks  counts, metric sums and the stop flag, summed over ranks.
#pragma once

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "trainers/recipe/optim.h"
#include "trainers/recipe/run_config.h"

namespace phantom::train {

// A collective failed; the message names the rank at fault when it can be found.
struct CollectiveError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// torchrun's variables, if this process was started by it (or by hand with the same variables).
struct LaunchEnv {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE: torchrun's agent hosts the TCPStore
  std::string attempt = "0"; // TORCHELASTIC_RESTART_COUNT
};
// None when WORLD_SIZE is unset; an error naming the variable when only some are set or one is malformed.
std::optional<LaunchEnv> launch_env();

class World {
 public:
  // The process group of this process (created on the first call, then reused); nullptr without torchrun's
  // variables or when WORLD_SIZE is 1. `device` ("auto" | "cpu" | "cuda") picks the backend and the device of
  // LOCAL_RANK.
  static World* init(const DistributedConfig& cfg, const std::string& device);
  static World* current();  // the group init() made, or nullptr

  int rank() const { return env_.rank; }
  int size() const { return env_.world; }
  const c10::Device& device() const { return device_; }
  const std::string& backend_name() const { return backend_name_; }

  // Collectives (blocking unless named async). Tensors live on device(); a failure throws CollectiveError.
  void all_reduce(at::Tensor& t, c10d::ReduceOp op = c10d::ReduceOp::SUM);
  c10::intrusive_ptr<c10d::Work> all_reduce_async(at::Tensor& t);
  c10::intrusive_ptr<c10d::Work> reduce_async(at::Tensor& t, int root);  // the sum lands on `root` only
  void broadcast(at::Tensor& t, int root);
  void send(at::Tensor& t, int dst);
  void recv(at::Tensor& t, int src);
  void wait(const c10::intrusive_ptr<c10d::Work>& w, const char* what);

  // A rank that failed outside a collective: its message goes into the store for the others, then the process
  // exits with status 1 (no destructor can block in a collective). Messages of CollectiveError are printed as is.
  [[noreturn]] void fail(const std::string& message, bool collective_error);
  const std::string& diagnosis() const { return diagnosis_; }  // of the first failed collective, or ""

  ~World();

 private:
  World(const LaunchEnv& env, const DistributedConfig& cfg, const std::string& device);
  std::string diagnose(const std::string& what, const std::string& error);  // who failed, and why
  template <class F>
  c10::intrusive_ptr<c10d::Work> guarded(const char* what, F&& launch);
  void heartbeat_loop();

  LaunchEnv env_;
  DistributedConfig cfg_;
  c10::Device device_{c10::kCPU};
  std::string backend_name_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> pg_;
  std::string diagnosis_;
  std::atomic<int64_t> collectives_{0};  // entered so far (published by the heartbeat)
  std::atomic<bool> stop_heartbeat_{false};
  std::thread heartbeat_;
};

// cmd_train's catch: in a data parallel run, report the failure to the other ranks and exit; else return.
void fail_if_distributed(const std::exception& e);

// Element-wise sum over ranks of int64 values (counts, flags). No-op without a world.
void sum_over_ranks(World* w, std::vector<int64_t>& values);
// Sums of metric numerators/denominators over ranks; every rank must hold the same keys (checked).
void sum_over_ranks(World* w, std::map<std::string, double>& sums);
// Contiguous share of rank r in [begin, end): the loader's split of a global batch, used for validation too.
std::pair<int64_t, int64_t> rank_share(int64_t begin, int64_t end, int rank, int world);
// Every parameter and buffer takes rank 0's values (a run starts identical on every rank).
void broadcast_module(World* w, torch::nn::Module& m);

class StageOptimizer {
 public:
  StageOptimizer(World* w, const Trainable& t, const OptimConfig& oc, const DistributedConfig& dc);
  ~StageOptimizer();

  // Data parallel: the next backward is the last micro-batch of the step, so its gradients are all-reduced.
  void sync_next_backward(bool on);
  void finish_backward();  // waits for every bucket and writes the summed gradients back
  double last_sync_ms() const { return sync_ms_; }  // finish_backward's wait: unhidden communication + slower ranks
  int64_t last_overlapped() const { return overlapped_; }  // buckets whose all-reduce started during backward
  double clip_grad_norm(double max_norm);  // global norm (ZeRO-2: the owners' norms, combined over ranks)
  void step(double lr);    // AdamW step (ZeRO: own partition, then owners broadcast), gradients cleared
  void zero_grad();
  // The full AdamW state for a checkpoint (collective under ZeRO: gathered on rank 0, nullptr elsewhere).
  torch::optim::Optimizer* checkpoint_state();
  void load(const std::string& ckpt_dir);  // a checkpoint written by any world size, ZeRO or not
  int64_t state_bytes() const;             // AdamW moments this rank holds (2 per element of its tensors)
  int64_t grad_bytes() const;              // gradients this rank holds after a step's reduction, bucket buffers included
  std::string memory_report();             // collective: the state and gradients held by each rank

  struct Bucket;  // defined in distributed.cpp

 private:
  void on_grad_ready(size_t param);
  void launch_ready_buckets();
  void launch(Bucket& b);
  void reap(bool block);     // writes back the buckets whose reduction finished (all, when blocking), in order
  void unpack(Bucket& b);    // waits for b's collectives and writes its sums into the gradients
  int64_t held_bytes() const;  // gradients and bucket buffers allocated now (measured)

  World* w_;
  Trainable all_;
  OptimConfig oc_;
  DistributedConfig dc_;
  std::unique_ptr<torch::optim::AdamW> opt_;   // all tensors, or this rank's partition under ZeRO
  std::unique_ptr<torch::optim::AdamW> full_;  // ZeRO, rank 0: the gathered state for checkpoints
  int zero_ = 0;                               // ZeRO stage in effect (0 without a world)
  std::vector<int> owner_;                     // ZeRO: owning rank of each trainable tensor
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<size_t> bucket_of_;              // bucket index of each trainable tensor
  size_t next_launch_ = 0;
  size_t next_reap_ = 0;                       // ZeRO-2: buckets before this one are written back and freed
  int64_t peak_held_ = 0;                      // ZeRO-2: largest held_bytes() seen at a bucket launch this step
  bool reported_ = false;                      // the measured gradient memory is logged once per stage
  double sync_ms_ = 0;
  int64_t overlapped_ = 0;
  bool syncing_ = false;
  std::mutex mu_;
};

}  // namespace phantom::train
