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

// Seeds torch's CPU (and CUDA) generators; with deterministic algorithms requested where torch has them.
void seed_everything(uint64_t seed, bool deterministic = true);

// One block of text: LibTorch version, CUDA/NCCL build and runtime availability, threads.
std::string runtime_report();

bool built_with_cuda_sources();  // our own .cu files were compiled in

}  // namespace phantom
