#include "phantom/model/config_checks.h"

#include <cmath>

namespace phantom {

namespace {

// "llm.num_heads (0) must be in [1, 4096]": the bounds keep a corrupt config from dividing by zero or sizing a
// vector with a negative or absurd count; they are far above every released Phantom/InternVL model.
std::string out_of(const char* key, int64_t v, int64_t lo, int64_t hi) {
  if (v >= lo && v <= hi) return "";
  return std::string(key) + " (" + std::to_string(v) + ") must be in [" + std::to_string(lo) + ", " +
         std::to_string(hi) + "]";
}

std::string positive(const char* key, double v) {
  if (std::isfinite(v) && v > 0) return "";
  return std::string(key) + " (" + std::to_string(v) + ") must be a positive number";
}

}  // namespace

constexpr int64_t kWidth = int64_t(1) << 20;

std::string llm_config_problem(const LlmConfig& l) {
  for (const std::string& p :
       {out_of("llm.hidden_size", l.hidden_size, 1, kWidth), out_of("llm.intermediate_size", l.intermediate_size, 1, kWidth),
        out_of("llm.num_layers", l.num_layers, 1, 1024), out_of("llm.num_heads", l.num_heads, 1, 4096),
        out_of("llm.num_kv_heads", l.num_kv_heads, 1, 4096), out_of("llm.vocab_size", l.vocab_size, 1, int64_t(1) << 24),
        out_of("llm.max_position_embeddings", l.max_position_embeddings, 1, int64_t(1) << 24),
        positive("llm.rms_norm_eps", l.rms_norm_eps), positive("llm.rope.theta", l.rope.theta),
        positive("llm.rope.factor", l.rope.factor)})
    if (!p.empty()) return p;
  auto n = [](int64_t x) { return std::to_string(x); };
  if (l.hidden_size % l.num_heads)
    return "llm.hidden_size (" + n(l.hidden_size) + ") must be a multiple of llm.num_heads (" + n(l.num_heads) + ")";
  if (l.num_heads % l.num_kv_heads)
    return "llm.num_heads (" + n(l.num_heads) + ") must be a multiple of llm.num_kv_heads (" + n(l.num_kv_heads) + ")";
  if (l.head_dim() % 2)
    return "llm.hidden_size / llm.num_heads (" + n(l.head_dim()) + ") must be even (rotary embedding pairs)";
  return "";
}

std::string model_config_problem(const ModelConfig& c) {
  if (std::string p = llm_config_problem(c.llm); !p.empty()) return p;
  const auto& v = c.vision;
  for (const std::string& p :
       {out_of("vision.image_size", v.image_size, 1, 1 << 15), out_of("vision.patch_size", v.patch_size, 1, 1 << 15),
        out_of("vision.hidden_size", v.hidden_size, 1, kWidth),
        out_of("vision.intermediate_size", v.intermediate_size, 1, kWidth),
        out_of("vision.num_layers", v.num_layers, 1, 1024), out_of("vision.num_heads", v.num_heads, 1, 4096),
        positive("vision.layer_norm_eps", v.layer_norm_eps)})
    if (!p.empty()) return p;
  auto n = [](int64_t x) { return std::to_string(x); };
  if (v.image_size % v.patch_size)
    return "vision.image_size (" + n(v.image_size) + ") must be a multiple of vision.patch_size (" + n(v.patch_size) + ")";
  if (v.hidden_size % v.num_heads)
    return "vision.hidden_size (" + n(v.hidden_size) + ") must be a multiple of vision.num_heads (" + n(v.num_heads) + ")";
  if (!(c.downsample_ratio > 0 && c.downsample_ratio <= 1))
    return "downsample_ratio (" + std::to_string(c.downsample_ratio) + ") must be in (0, 1]";
  const int64_t grid = v.image_size / v.patch_size;
  const double side = static_cast<double>(grid) * c.downsample_ratio;
  if (side < 1 || side != std::floor(side))
    return "downsample_ratio (" + std::to_string(c.downsample_ratio) + ") must divide the patch grid (" + n(grid) +
           " = vision.image_size / vision.patch_size) into whole cells";
  if (!std::isfinite(c.phantom_eta) || c.phantom_eta < 0)
    return "phantom_eta (" + std::to_string(c.phantom_eta) + ") must be a non-negative number";
  return "";
}

void validate_model_config(const ModelConfig& c, const std::string& prefix) {
  const std::string p = model_config_problem(c);
  if (!p.empty()) throw config::ConfigError(prefix + p);
}

}  // namespace phantom
