// Reused float tensors for the loader's largest per-batch allocation, the pixel tiles (tens to hundreds of MB a
// batch at Phantom's tiling). A fresh tensor of that size is fresh pages from the kernel every batch: page faults
// and zeroing cost as much as the tiling itself. The pool hands out views of a few long-lived buffers; a buffer is
// free again once nothing but the pool refers to its storage (the batch and every view of it are gone).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <mutex>
#include <vector>

namespace phantom::data {

class TensorPool {
 public:
  // At most `max_buffers` buffers are kept: the batches in flight (loader prefetch + the one being trained on + 1).
  explicit TensorPool(size_t max_buffers) : max_(max_buffers) {}

  // An uninitialised contiguous float32 CPU tensor of `sizes`, a view of a pooled buffer when one is free (else a
  // new buffer, or a plain tensor once `max_buffers` are all in use). Thread-safe.
  at::Tensor empty(at::IntArrayRef sizes);

  int64_t allocations() const;  // buffers allocated so far (pooled or not)
  int64_t reuses() const;       // requests served from a free buffer

 private:
  mutable std::mutex mu_;
  size_t max_;
  std::vector<at::Tensor> buffers_;  // 1-D float32
  int64_t allocations_ = 0, reuses_ = 0;
};

}  // namespace phantom::data
