// Small building blocks shared by the vision tower and the decoder: RMSNorm, rotary embeddings, exact GELU; the
// Linear layer (with optional LoRA / int8) is in phantom/model/lora.h.
#pragma once

#include <torch/torch.h>

#include "phantom/model/lora.h"
#include "phantom/model/model_config.h"

namespace phantom {

// y = w * x / sqrt(mean(x^2) + eps), computed in fp32 and cast back (as the HF Qwen2/InternLM2/Phi-3 code does).
// RMSNorm as Qwen2/InternLM2/Phi-3 (and InternViT-6B) compute it: in fp32, scaled by `weight` in the input dtype.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// Rotary position embedding for the variants the Phantom backbones use: default, linear, dynamic NTK, longrope.
// cos/sin are computed from explicit position ids (B, L) so left padding and restarted positions just work.
class Rope {
 public:
  Rope(const LlmConfig& cfg, int64_t head_dim);
  // Returns cos, sin of shape (B, L, 1, D) in `dtype`. `seq_len` (max position + 1 in the whole sequence, cache
  // included) selects the dynamic-NTK base and the longrope short/long factors, as HF does.
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& positions, int64_t seq_len, c10::ScalarType dtype) const;
  // x (B, L, H, D) rotated with the half-split convention (rotate_half), as every HF Llama-family model.
  static at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

 private:
  at::Tensor inv_freq_for(int64_t seq_len, double* attention_scale) const;
  RopeConfig cfg_;
  int64_t dim_;
  int64_t max_pos_;
};

// Exact (erf) GELU, as torch.nn.functional.gelu's default.
inline at::Tensor exact_gelu(const at::Tensor& x) { return torch::gelu(x); }

}  // namespace phantom
