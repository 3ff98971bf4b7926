// ZeRO-1/2 (Rajbhandari et al., 2020) over whole tensors: each trainable tensor has one owner rank, which alone
// keeps its AdamW state (ZeRO-1) and, with gradient buckets reduced to owners (buckets.h), its gradient (ZeRO-2).
// After each step the owners broadcast their updated tensors. Checkpoints gather the full AdamW state on rank 0,
// so a run resumes on any world size.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "trainers/distributed/world.h"

namespace phantom::distributed {

// Owner of each tensor: largest tensors first, each to the rank holding the fewest elements so far (the same on
// every rank).
std::vector<int> partition_by_size(const std::vector<at::Tensor>& params, int world);

// Each owner broadcasts its updated tensors (one flat fp32 buffer per owner); the others copy them in.
void broadcast_from_owners(World& w, const std::vector<at::Tensor>& params, const std::vector<int>& owner);

// ZeRO-2 global-norm clipping: each owner's per-tensor norms (zeros elsewhere) summed over ranks, then the same
// 2-norm of those norms, in tensor order, as torch::nn::utils::clip_grad_norm_ takes. Returns the total norm.
double clip_owned_grad_norm(World& w, const std::vector<at::Tensor>& params, const std::vector<int>& owner,
                            double max_norm);

// Owners send their AdamW moments and step counts to rank 0, which fills `full` (an AdamW over every tensor; only
// rank 0's is written). `mine` is this rank's AdamW over its own tensors.
void gather_adamw_state(World& w, const std::vector<at::Tensor>& params, const std::vector<int>& owner,
                        torch::optim::AdamW& mine, torch::optim::AdamW* full);

// Moves this rank's tensors' state from a full AdamW (read from a checkpoint) into `mine`.
void keep_owned_state(torch::optim::AdamW& full, torch::optim::AdamW& mine, const std::vector<at::Tensor>& params,
                      const std::vector<int>& owner, int rank);

}  // namespace phantom::distributed
