// Fallbacks when phantom's CUDA sources are not compiled (a CPU-only LibTorch): the CUDA entry points say so.
#include "phantom/cuda/kernels.h"

#ifndef PHANTOM_HAS_CUDA
#include <stdexcept>

namespace phantom::cuda {
bool compiled() { return false; }
at::Tensor phantom_gate_forward(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                const at::Tensor&) {
  throw std::runtime_error("phantom was built without CUDA sources (the LibTorch found has no CUDA)");
}
}  // namespace phantom::cuda
#endif
