// The NCCL backend of the World (trainers/distributed/nccl.cpp, compiled with the CUDA and NCCL headers when
// LibTorch has CUDA; a CPU-only build throws a named error). Callers: World::init and `phantom gpucheck`.
#pragma once

#include <chrono>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace phantom::distributed {

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout, int device_index);

}  // namespace phantom::distributed
