#include "phantom/model/vision.h"

#include <cmath>

#include "phantom/model/checkpointing.h"

namespace phantom {
namespace F = torch::nn::functional;

VisionNormImpl::VisionNormImpl(const VisionConfig& cfg, int64_t dim)
    : eps(cfg.layer_norm_eps), rms(cfg.norm_type == "rms_norm") {
  weight = register_parameter("weight", torch::ones({dim}));
  if (!rms) bias = register_parameter("bias", torch::zeros({dim}));
}

at::Tensor VisionNormImpl::forward(const at::Tensor& x) {
  return rms ? rms_norm(x, weight, eps) : torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

VisionAttentionImpl::VisionAttentionImpl(const VisionConfig& cfg)
    : num_heads(cfg.num_heads), head_dim(cfg.hidden_size / cfg.num_heads) {
  const int64_t C = cfg.hidden_size;
  qkv = register_module("qkv", Linear(C, 3 * C, cfg.qkv_bias));
  proj = register_module("proj", Linear(C, C));
  if (cfg.qk_normalization) {
    q_norm = register_module("q_norm", VisionNorm(cfg, C));
    k_norm = register_module("k_norm", VisionNorm(cfg, C));
  }
}

at::Tensor VisionAttentionImpl::forward(const at::Tensor& x) {
  const int64_t N = x.size(0), T = x.size(1), H = num_heads, D = head_dim;
  auto qkv_out = qkv(x).view({N, T, 3, H, D});
  auto q = qkv_out.select(2, 0), k = qkv_out.select(2, 1), v = qkv_out.select(2, 2);  // (N, T, H, D)
  if (q_norm) {
    // InternViT-6B normalises q and k over the whole width before splitting heads.
    q = q_norm(q.reshape({N, T, H * D})).view({N, T, H, D});
    k = k_norm(k.reshape({N, T, H * D})).view({N, T, H, D});
  }
  auto o = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2));
  return proj(o.transpose(1, 2).reshape({N, T, H * D}));
}

VisionMLPImpl::VisionMLPImpl(const VisionConfig& cfg) {
  fc1 = register_module("fc1", Linear(cfg.hidden_size, cfg.intermediate_size));
  fc2 = register_module("fc2", Linear(cfg.intermediate_size, cfg.hidden_size));
}

VisionLayerImpl::VisionLayerImpl(const VisionConfig& cfg) {
  norm1 = register_module("norm1", VisionNorm(cfg, cfg.hidden_size));
  attn = register_module("attn", VisionAttention(cfg));
  ls1 = register_parameter("ls1", cfg.initializer_factor * torch::ones({cfg.hidden_size}));
  norm2 = register_module("norm2", VisionNorm(cfg, cfg.hidden_size));
  mlp = register_module("mlp", VisionMLP(cfg));
  ls2 = register_parameter("ls2", cfg.initializer_factor * torch::ones({cfg.hidden_size}));
}

at::Tensor VisionLayerImpl::forward(const at::Tensor& x) {
  auto h = x + attn(norm1(x)) * ls1;
  return h + mlp(norm2(h)) * ls2;
}

VisionEmbeddingsImpl::VisionEmbeddingsImpl(const VisionConfig& cfg) : grid(cfg.image_size / cfg.patch_size) {
  const int64_t C = cfg.hidden_size;
  patch_embedding = register_module(
      "patch_embedding", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, C, cfg.patch_size).stride(cfg.patch_size)));
  class_embedding = register_parameter("class_embedding", torch::randn({1, 1, C}));
  position_embedding = register_parameter("position_embedding", torch::randn({1, 1 + grid * grid, C}));
}

at::Tensor VisionEmbeddingsImpl::forward(const at::Tensor& pixels) {
  auto patches = patch_embedding(pixels.to(patch_embedding->weight.scalar_type()));  // (N, C, g, g)
  const int64_t N = patches.size(0), C = patches.size(1), gh = patches.size(2), gw = patches.size(3);
  auto x = patches.flatten(2).transpose(1, 2);  // (N, g*g, C)
  x = torch::cat({class_embedding.expand({N, 1, C}).to(x.scalar_type()), x}, 1);
  auto pos_cls = position_embedding.narrow(1, 0, 1);
  auto pos = position_embedding.narrow(1, 1, grid * grid);
  if (gh != grid || gw != grid) {
    // Bicubic interpolation of the trained grid to this one, in fp32 (as InternViT's _get_pos_embed).
    auto p = pos.to(torch::kFloat).reshape({1, grid, grid, C}).permute({0, 3, 1, 2});
    p = F::interpolate(p, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{gh, gw})
                              .mode(torch::kBicubic)
                              .align_corners(false));
    pos = p.reshape({1, C, gh * gw}).permute({0, 2, 1}).to(x.scalar_type());
  }
  return x + torch::cat({pos_cls, pos}, 1).to(x.scalar_type());
}

VisionModelImpl::VisionModelImpl(const VisionConfig& cfg) {
  embeddings = register_module("embeddings", VisionEmbeddings(cfg));
  encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  layers = encoder->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_layers; ++i) layers->push_back(VisionLayer(cfg));
}

at::Tensor VisionModelImpl::forward(const at::Tensor& pixels) {
  auto x = embeddings(pixels);
  for (auto& module : *layers) {
    auto* layer = module->as<VisionLayerImpl>();
    if (activation_checkpointing && wants_checkpoint(*layer, x))
      x = checkpointed(x, [layer](const at::Tensor& h) { return layer->forward(h); });
    else
      x = layer->forward(x);
  }
  return x;
}

at::Tensor pixel_shuffle(const at::Tensor& x, double ratio) {
  const int64_t n = x.size(0), w = x.size(1), h = x.size(2), c = x.size(3);
  const int64_t h2 = static_cast<int64_t>(h * ratio), w2 = static_cast<int64_t>(w * ratio);
  auto y = x.reshape({n, w, h2, static_cast<int64_t>(c / ratio)}).permute({0, 2, 1, 3}).contiguous();
  y = y.view({n, h2, w2, static_cast<int64_t>(c / (ratio * ratio))}).permute({0, 2, 1, 3}).contiguous();
  return y;
}

}  // namespace phantom
