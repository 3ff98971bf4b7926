#include "data/tensor_pool.h"

#include <torch/torch.h>

namespace phantom::data {

at::Tensor TensorPool::empty(at::IntArrayRef sizes) {
  int64_t n = 1;
  for (auto s : sizes) n *= s;
  std::lock_guard<std::mutex> lock(mu_);
  // A buffer is free when the pool holds the only reference to its storage. Views share their base's storage, and
  // nobody else can take a new reference to a free buffer (only this function hands them out, under the lock).
  auto is_free = [](const at::Tensor& b) { return b.storage().use_count() == 1; };
  at::Tensor* best = nullptr;
  for (auto& b : buffers_)
    if (is_free(b) && b.numel() >= n && (!best || b.numel() < best->numel())) best = &b;
  if (best) {
    ++reuses_;
    return best->narrow(0, 0, n).view(sizes);
  }
  ++allocations_;
  // Room for a batch a quarter larger than this one: tile counts vary from batch to batch.
  at::Tensor fresh = torch::empty({n + n / 4}, torch::kFloat32);
  at::Tensor* slot = nullptr;
  if (buffers_.size() < max_) {
    buffers_.push_back(fresh);
    slot = &buffers_.back();
  } else {
    for (auto& b : buffers_)
      if (is_free(b)) {  // free but too small: replaced by the larger one
        b = fresh;
        slot = &b;
        break;
      }
  }
  return (slot ? *slot : fresh).narrow(0, 0, n).view(sizes);
}

int64_t TensorPool::allocations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return allocations_;
}

int64_t TensorPool::reuses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reuses_;
}

}  // namespace phantom::data
