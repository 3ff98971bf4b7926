// Gradients summed over ranks in buckets while backward runs (as PyTorch DDP does). A post-accumulate-grad hook
// marks each tensor ready; a bucket whose tensors are all ready starts its collective at once, and buckets start
// strictly in index order on every rank, so the collectives match whatever order gradients arrive in. Only the
// last micro-batch of an accumulation group syncs (sync_next_backward). Gradients are SUMMED: the losses are
// already divided by the global counts.
//
// Without owners every bucket is all-reduced. With owners (ZeRO-2, zero.h) each bucket holds one segment per owner
// rank, reduced to that rank only, and the other ranks drop those gradients at once, so a rank keeps only the
// gradients of its own tensors (at most kInFlight bucket buffers alive).
//
// Why not c10d::Reducer: docs/distributed.md.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "trainers/distributed/world.h"

namespace phantom::distributed {

class GradientBuckets {
 public:
  // `owner`: the rank that keeps each tensor's gradient (ZeRO-2), or empty (every rank keeps every sum).
  GradientBuckets(World& w, std::vector<at::Tensor> params, std::vector<std::string> names, const DistributedConfig& dc,
                  std::vector<int> owner = {});
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // The next backward is the last micro-batch of the step: its gradients are summed over ranks.
  void sync_next_backward(bool on) { syncing_ = on; }
  // Launches the buckets backward did not (unused tensors, or overlap off), waits for all of them and writes the
  // sums into the gradients. Logs the gradient memory held per rank once.
  void finish_backward();

  double last_sync_ms() const { return sync_ms_; }          // finish_backward's wait: unhidden communication
  int64_t last_overlapped() const { return overlapped_; }   // buckets whose collective started during backward
  size_t count() const { return buckets_.size(); }
  int64_t buffer_bytes() const;                             // bucket buffers allocated now
  std::string describe() const;                             // "summed in N bucket(s) during backward, ..."

  struct Bucket;  // buckets.cpp

 private:
  void on_grad_ready(size_t param);
  void launch_ready();
  void launch(Bucket& b);
  void unpack(Bucket& b);    // waits for b's collectives and writes its sums into the gradients
  void reap(bool block);     // unpacks the launched buckets whose collectives finished (all, when blocking), in order
  bool owned_elsewhere(size_t param) const;
  int64_t held_bytes() const;  // gradients and bucket buffers allocated now (measured)

  World& w_;
  std::vector<at::Tensor> params_;
  std::vector<std::string> names_;
  DistributedConfig dc_;
  std::vector<int> owner_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<size_t> bucket_of_;  // bucket index of each tensor
  size_t next_launch_ = 0;
  size_t next_reap_ = 0;           // with owners: buckets before this one are written back and freed
  int64_t peak_held_ = 0;          // largest held_bytes() seen at a bucket launch this step
  bool reported_ = false;          // the measured gradient memory is logged once
  bool syncing_ = false;
  double sync_ms_ = 0;
  int64_t overlapped_ = 0;
  std::mutex mu_;
};

}  // namespace phantom::distributed
