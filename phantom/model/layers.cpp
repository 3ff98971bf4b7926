#include "phantom/model/layers.h"

#include <cmath>

namespace phantom {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  auto h = x.to(torch::kFloat);
  h = h * torch::rsqrt(h.pow(2).mean(-1, true) + eps);
  return weight * h.to(x.scalar_type());
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) { return rms_norm(x, weight, eps); }

Rope::Rope(const LlmConfig& cfg, int64_t head_dim)
    : cfg_(cfg.rope), dim_(head_dim), max_pos_(cfg.max_position_embeddings) {
  if (cfg_.type == "longrope") {
    const size_t half = static_cast<size_t>(head_dim / 2);
    if (cfg_.short_factor.size() != half || cfg_.long_factor.size() != half)
      throw std::runtime_error("longrope: short_factor/long_factor must have head_dim/2 = " + std::to_string(half) +
                               " entries");
  }
}

at::Tensor Rope::inv_freq_for(int64_t seq_len, double* attention_scale) const {
  auto exponent = torch::arange(0, dim_, 2, torch::kInt64).to(torch::kFloat) / static_cast<double>(dim_);
  double base = cfg_.theta;
  *attention_scale = 1.0;
  if (cfg_.type == "dynamic" && seq_len > max_pos_) {
    // NTK-aware base growth (HF _compute_dynamic_ntk_parameters).
    const double f = cfg_.factor;
    base = base * std::pow(f * static_cast<double>(seq_len) / static_cast<double>(max_pos_) - (f - 1.0),
                           static_cast<double>(dim_) / static_cast<double>(dim_ - 2));
  }
  auto denom = torch::pow(torch::tensor(base, torch::kFloat), exponent);
  if (cfg_.type == "longrope") {
    const int64_t orig = cfg_.original_max_position_embeddings > 0 ? cfg_.original_max_position_embeddings : max_pos_;
    const auto& ext = seq_len > orig ? cfg_.long_factor : cfg_.short_factor;
    denom = torch::tensor(ext, torch::kDouble).to(torch::kFloat) * denom;
    const double factor = static_cast<double>(max_pos_) / static_cast<double>(orig);
    if (factor > 1.0) *attention_scale = std::sqrt(1.0 + std::log(factor) / std::log(static_cast<double>(orig)));
  }
  auto inv_freq = 1.0 / denom;
  return inv_freq;
}

std::pair<at::Tensor, at::Tensor> Rope::cos_sin(const at::Tensor& positions, int64_t seq_len,
                                                c10::ScalarType dtype) const {
  double scale = 1.0;
  auto inv_freq = inv_freq_for(seq_len, &scale).to(positions.device());
  auto pos = positions.to(torch::kFloat);
  if (cfg_.type == "linear") pos = pos / cfg_.factor;
  auto freqs = pos.unsqueeze(-1) * inv_freq;  // (B, L, D/2)
  auto emb = torch::cat({freqs, freqs}, -1);   // (B, L, D)
  auto cos = emb.cos(), sin = emb.sin();
  if (scale != 1.0) cos = cos * scale, sin = sin * scale;
  return {cos.unsqueeze(2).to(dtype), sin.unsqueeze(2).to(dtype)};
}

at::Tensor Rope::apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

}  // namespace phantom
