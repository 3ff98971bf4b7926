// InternViT vision encoder (docs/paper.md, "Model"), pixel shuffle (§1.2) and the vision_proj MLP projector.
#pragma once

#include <torch/torch.h>

#include "phantom/model/layers.h"
#include "phantom/model/model_config.h"

namespace phantom {

// LayerNorm or RMSNorm as the config says (InternViT-300M: LayerNorm; InternViT-6B: RMSNorm).
struct VisionNormImpl : torch::nn::Module {
  VisionNormImpl(const VisionConfig& cfg, int64_t dim);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight, bias;  // bias only for LayerNorm
  double eps;
  bool rms;
};
TORCH_MODULE(VisionNorm);

struct VisionAttentionImpl : torch::nn::Module {
  explicit VisionAttentionImpl(const VisionConfig& cfg);
  at::Tensor forward(const at::Tensor& x);
  Linear qkv{nullptr}, proj{nullptr};
  VisionNorm q_norm{nullptr}, k_norm{nullptr};  // only with qk_normalization
  int64_t num_heads, head_dim;
};
TORCH_MODULE(VisionAttention);

struct VisionMLPImpl : torch::nn::Module {
  explicit VisionMLPImpl(const VisionConfig& cfg);
  at::Tensor forward(const at::Tensor& x) { return fc2(exact_gelu(fc1(x))); }
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(VisionMLP);

// x = x + ls1 * attn(norm1(x)); x = x + ls2 * mlp(norm2(x))
struct VisionLayerImpl : torch::nn::Module {
  explicit VisionLayerImpl(const VisionConfig& cfg);
  at::Tensor forward(const at::Tensor& x);
  VisionNorm norm1{nullptr}, norm2{nullptr};
  VisionAttention attn{nullptr};
  VisionMLP mlp{nullptr};
  at::Tensor ls1, ls2;
};
TORCH_MODULE(VisionLayer);

struct VisionEmbeddingsImpl : torch::nn::Module {
  explicit VisionEmbeddingsImpl(const VisionConfig& cfg);
  at::Tensor forward(const at::Tensor& pixels);  // (N, 3, S, S) -> (N, 1 + g*g, C)
  torch::nn::Conv2d patch_embedding{nullptr};
  at::Tensor class_embedding, position_embedding;  // (1, 1, C), (1, 1 + G*G, C)
  int64_t grid;  // the grid the position embedding was trained for
};
TORCH_MODULE(VisionEmbeddings);

struct VisionModelImpl : torch::nn::Module {
  explicit VisionModelImpl(const VisionConfig& cfg);
  // Last hidden state (N, 1 + g*g, C); there is no final norm in InternViT.
  at::Tensor forward(const at::Tensor& pixels);
  // Recompute each block's activations in backward instead of storing them (checkpointing.h); a block that keeps
  // no graph (frozen, with a frozen input) is run as it is.
  bool activation_checkpointing = false;
  VisionEmbeddings embeddings{nullptr};
  torch::nn::ModuleList layers;  // registered as encoder.layers
  std::shared_ptr<torch::nn::Module> encoder;
};
TORCH_MODULE(VisionModel);

// (n, h, w, c) -> (n, h*r, w*r, c/r^2) in exactly the official channel order (docs/paper.md, "Model").
at::Tensor pixel_shuffle(const at::Tensor& x, double ratio);

}  // namespace phantom
