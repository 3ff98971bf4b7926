// The NCCL process group (CUDA tensors), in its own file: its header needs the CUDA and NCCL headers, which only
// a CUDA build of LibTorch brings (the NCCL one from the wheel's nvidia-nccl package; see CMakeLists.txt).
#include <chrono>
#include <stdexcept>

#include "trainers/distributed/nccl.h"
#include "trainers/distributed/world.h"

#ifdef PHANTOM_HAS_CUDA
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1  // libtorch_cuda exports c10d::ProcessGroupNCCL; its header needs the macro
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace phantom::distributed {

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout, int device_index) {
#ifdef PHANTOM_HAS_CUDA
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));  // one GPU per local rank
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
#else
  (void)store, (void)rank, (void)size, (void)timeout, (void)device_index;
  throw std::runtime_error("distributed.backend nccl: this build has no CUDA sources (PHANTOM_HAS_CUDA is off)");
#endif
}

}  // namespace phantom::distributed
