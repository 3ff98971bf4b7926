// Entry points of phantom's own CUDA kernels (phantom/cuda/*.cu). They are compiled whenever the LibTorch found
// is a CUDA build, so CI checks that they compile and link on a CPU-only machine; they run where a GPU exists.
#pragma once

#include <ATen/core/Tensor.h>

namespace phantom::cuda {

// True when the .cu sources were compiled into this binary.
bool compiled();

// Fused Phantom gate (SPEC §2), inference path: for rows of o2 = [ō | õ] (N, 2D) on a CUDA device,
//   w = sigmoid(ō·f_w + f_b − õ·g_w − g_b),  out = w·ō + (1−w)·õ      -> (N, D)
// f_w, g_w: (D) ; f_b, g_b: (1). Accumulates in fp32 for fp32/bf16/fp16 inputs.
at::Tensor phantom_gate_forward(const at::Tensor& o2, const at::Tensor& f_w, const at::Tensor& f_b,
                                const at::Tensor& g_w, const at::Tensor& g_b);

}  // namespace phantom::cuda
