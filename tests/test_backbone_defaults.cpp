// The InternLM2/Phi-3 details the official code decides: dynamic NTK RoPE keeps the base of the longest sequence
// seen (golden values from the formula), and omitted config.json keys take the official config classes' defaults.
#include <cmath>
#include <fstream>

#include "phantom/io/hf_config.h"
#include "phantom/model/decoder.h"
#include "phantom/model/layers.h"
#include "tests/helpers.h"

using namespace phantom;

namespace {

LlmConfig dynamic_config(int64_t max_pos, double factor) {
  LlmConfig c;
  c.family = "internlm2";
  c.hidden_size = 32, c.intermediate_size = 64, c.num_layers = 2, c.num_heads = 4, c.num_kv_heads = 2;
  c.vocab_size = 64, c.max_position_embeddings = max_pos, c.attention_bias = false, c.tie_word_embeddings = false;
  c.rope.theta = 10000.0, c.rope.type = "dynamic", c.rope.factor = factor;
  return c;
}

// cos of position p, frequency i, from the NTK formula written out: base = θ (f L / M - (f - 1))^(d / (d - 2)).
double golden_cos(int64_t p, int64_t i, int64_t d, double theta, double f, int64_t L, int64_t M) {
  const double base = L > M ? theta * std::pow(f * L / static_cast<double>(M) - (f - 1), d / static_cast<double>(d - 2)) : theta;
  return std::cos(static_cast<double>(p) / std::pow(base, 2.0 * static_cast<double>(i) / static_cast<double>(d)));
}

double max_err(const Rope& rope, int64_t len, int64_t d, int64_t base_len, const LlmConfig& c) {
  auto pos = torch::arange(len, torch::kInt64).unsqueeze(0);
  auto cos = rope.cos_sin(pos, len, torch::kDouble).first.view({len, d});
  double err = 0;
  for (int64_t p = 0; p < len; ++p)
    for (int64_t i = 0; i < d / 2; ++i)
      err = std::max(err, std::abs(cos[p][i].item<double>() -
                                   golden_cos(p, i, d, c.rope.theta, c.rope.factor, base_len, c.max_position_embeddings)));
  return err;
}

}  // namespace

TEST_CASE("rope: dynamic NTK keeps the base of the longest sequence seen, as the official InternLM2 cache") {
  const auto c = dynamic_config(16, 2.0);
  const int64_t d = 8;
  Rope rope(c, d);
  CHECK(rope.dynamic_length() == 16);
  CHECK(max_err(rope, 10, d, 10, c) < 1e-5);  // within max_position_embeddings: plain θ
  CHECK(max_err(rope, 40, d, 40, c) < 1e-5);  // longer: base from 40
  CHECK(rope.dynamic_length() == 40);
  CHECK(max_err(rope, 10, d, 40, c) < 1e-5);  // shorter afterwards: still the base of 40
  CHECK(max_err(rope, 10, d, 10, c) > 1e-3);  // (and that differs from θ)
  CHECK(max_err(rope, 30, d, 40, c) < 1e-5);
  CHECK(max_err(rope, 50, d, 50, c) < 1e-5);  // a longer one moves it again
  Rope copy = rope;
  CHECK(copy.dynamic_length() == 50);
  CHECK(max_err(copy, 12, d, 50, c) < 1e-5);
}

TEST_CASE("rope: a decoder after a long sequence computes a short one with the long sequence's base") {
  torch::manual_seed(3);
  auto c = dynamic_config(16, 2.0);
  DecoderLM lm(c, PhantomMode::off, 1e-4);
  // The same weights with a fixed base equal to the NTK base of a 40-token sequence.
  auto fixed_cfg = c;
  fixed_cfg.rope.type = "default";
  const double d = static_cast<double>(c.head_dim());
  fixed_cfg.rope.theta = c.rope.theta * std::pow(2.0 * 40 / 16 - 1.0, d / (d - 2));
  DecoderLM fixed(fixed_cfg, PhantomMode::off, 1e-4);
  {
    torch::NoGradGuard ng;
    auto src = lm->named_parameters();
    for (auto& p : fixed->named_parameters()) p.value().copy_(src[p.key()]);
  }
  auto logits = [](DecoderLMImpl& m, int64_t len) {
    torch::NoGradGuard ng;
    auto ids = torch::arange(len, torch::kInt64).remainder(60).unsqueeze(0);
    DecoderInputs in;
    in.embeds = m.embed(ids);
    in.attention_mask = torch::ones_like(ids);
    return m.forward(in);
  };
  const auto fresh_short = logits(*lm, 12);
  logits(*lm, 40);  // the long sequence
  const auto after_long = logits(*lm, 12);
  CHECK((after_long - logits(*fixed, 12)).abs().max().item<double>() < 1e-5);
  CHECK((after_long - fresh_short).abs().max().item<double>() > 1e-4);
}

TEST_CASE("hf config: omitted InternLM2 and Phi-3 keys take the official config classes' defaults") {
  const nlohmann::json base = {{"hidden_size", 64}, {"intermediate_size", 128}, {"num_hidden_layers", 2},
                               {"num_attention_heads", 4}, {"vocab_size", 100}};
  auto internlm2 = base;
  internlm2["architectures"] = {"InternLM2ForCausalLM"};
  const auto a = llm_config_from_json(internlm2, "internlm2 config.json");
  CHECK(a.attention_bias);  // InternLM2Config(bias=True): wqkv and wo
  CHECK(a.max_position_embeddings == 2048);
  CHECK(a.rms_norm_eps == 1e-6);
  CHECK(a.rope.theta == 10000.0);
  CHECK(a.num_kv_heads == 4);
  CHECK_FALSE(a.tie_word_embeddings);
  internlm2["bias"] = false;
  CHECK_FALSE(llm_config_from_json(internlm2, "x").attention_bias);
  // With bias, wo has one too (the official attention passes config.bias to wqkv and wo).
  {
    DecoderLM lm(a, PhantomMode::off, 1e-4);
    int o_bias = 0, qkv_bias = 0;
    for (auto& kv : lm->named_parameters()) {
      const std::string& n = kv.key();
      o_bias += n.find("self_attn.o_proj.bias") != std::string::npos;
      qkv_bias += n.find("qkv_proj.bias") != std::string::npos;
    }
    CHECK(o_bias == 2);
    CHECK(qkv_bias == 2);
  }

  auto phi3 = base;
  phi3["architectures"] = {"Phi3ForCausalLM"};
  const auto p = llm_config_from_json(phi3, "phi3 config.json");
  CHECK_FALSE(p.attention_bias);
  CHECK(p.max_position_embeddings == 4096);
  CHECK(p.rope.original_max_position_embeddings == 4096);
  CHECK(p.rms_norm_eps == 1e-5);
  CHECK(p.rope.theta == 10000.0);
  CHECK_FALSE(p.tie_word_embeddings);
}
