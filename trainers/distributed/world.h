// The process group of a torchrun launch (c10d: Gloo for CPU tensors, NCCL for CUDA) and the failure protocol:
// collectives that fail with a message naming the rank at fault. A rank that throws puts its message into the store
// ("error/<rank>") and exits non-zero; the others, when their collective fails or times out, read it (or find the
// rank whose heartbeat stopped) and exit with "rank N failed: <message>". docs/distributed.md describes it.
#pragma once

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "phantom/util/launch_env.h"
#include "trainers/distributed/config.h"

namespace phantom::distributed {

// A collective failed; the message names the rank at fault when it can be found.
struct CollectiveError : std::runtime_error {
  using std::runtime_error::runtime_error;
};


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
  void make_process_group(std::chrono::milliseconds timeout);  // the backend over store_ (waits for the peers)
  World(const util::LaunchEnv& env, const DistributedConfig& cfg, const std::string& device);
  std::string diagnose(const std::string& what, const std::string& error);  // who failed, and why
  template <class F>
  c10::intrusive_ptr<c10d::Work> guarded(const char* what, F&& launch);
  void heartbeat_loop();

  util::LaunchEnv env_;
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

}  // namespace phantom::distributed
