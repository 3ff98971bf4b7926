// Process-wide runtime choices made once at start: threads, device, seed, precision.
#pragma once

#include <cstdint>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace phantom {

// Sets torch's intra-op thread count: `threads` > 0 as given, else every core (LibTorch may default to 1).
// Returns the count in force.
int set_threads(int64_t threads);

// "auto" picks CUDA when available (the local rank's GPU), else CPU. "cuda" without a GPU is an error.
c10::Device pick_device(const std::string& name, int local_rank = 0);

// "auto": bf16 on CUDA, fp32 on CPU.
c10::ScalarType pick_compute_dtype(const std::string& precision, const c10::Device& device);

// Mixed precision by autocast (fp32 master weights; matmuls/attention in `dtype`): the autocast state of both
// device types, captured and re-entered as a scope. Activation checkpointing captures it at forward time so the
// backward recomputation runs in the same precision.
struct AutocastState {
  bool cpu = false, cuda = false;
  c10::ScalarType cpu_dtype = c10::kBFloat16, cuda_dtype = c10::kBFloat16;
  static AutocastState current();
  // Autocast on `device` when `dtype` is lower than fp32; off (fp32) otherwise.
  static AutocastState for_compute(c10::ScalarType dtype, const c10::Device& device);
  bool enabled() const { return cpu || cuda; }
};

// RAII: enters `state` (nesting like torch.autocast, the cast cache cleared when the outermost scope ends) and
// restores the previous state on exit.
class AutocastScope {
 public:
  explicit AutocastScope(const AutocastState& state);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  AutocastState prev_;
};

// Seeds torch's CPU (and CUDA) generators; with deterministic algorithms requested where torch has them.
void seed_everything(uint64_t seed, bool deterministic = true);

// One block of text: LibTorch version, CUDA/NCCL build and runtime availability, threads.
std::string runtime_report();

// Peak memory of this process on `device`, in GiB: the CUDA caching allocator's peak of allocated bytes on a GPU
// (what torch.cuda.max_memory_allocated reports), the peak resident set size of the process on CPU.
double peak_memory_gb(const c10::Device& device);

}  // namespace phantom
