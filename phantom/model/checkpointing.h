// Activation checkpointing of one block (a decoder layer, a ViT block): the forward keeps only the block's input,
// backward re-runs the block with grad enabled and back-propagates through it. Blocks have no randomness (no
// dropout; LoRA dropout with checkpointing is refused by the config check), so the recomputation is exact: the
// gradients equal the uncheckpointed step's.
#pragma once

#include <torch/torch.h>

#include <functional>

namespace phantom {

// y = block(x), checkpointed. The autocast state of the forward is re-entered when backward recomputes the block.
// x is made a grad-requiring input when it is not (everything below the block frozen), so the block's own
// trainable tensors still get gradients.
at::Tensor checkpointed(const at::Tensor& x, std::function<at::Tensor(const at::Tensor&)> block);

// Whether a block is worth checkpointing in this forward: training with grad enabled, and a graph would be kept
// (the input needs grad or one of the block's parameters trains). A fully frozen block with a frozen input keeps
// no activations anyway.
bool wants_checkpoint(const torch::nn::Module& block, const at::Tensor& x);

}  // namespace phantom
