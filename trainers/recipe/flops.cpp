#include "trainers/recipe/flops.h"

#include <algorithm>
#include <cctype>

#ifdef PHANTOM_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "phantom/model/lora.h"

namespace phantom::recipe {

namespace {

bool trains(const at::Tensor& t) { return t.defined() && t.requires_grad(); }

// Walks the matmuls in forward order; `grad_below` turns on at the first trainable tensor and stays on.
struct Counter {
  bool grad_below = false;

  // A Linear over `rows` rows (its LoRA adapter included).
  double linear(const LinearImpl& l, double rows) {
    const double P = static_cast<double>(l.in_features) * static_cast<double>(l.out_features);
    double f = 2 * P * rows * (1 + (grad_below ? 1 : 0) + (trains(l.weight) ? 1 : 0));
    bool trainable = trains(l.weight) || trains(l.bias);
    if (l.has_lora()) {
      const double r = static_cast<double>(l.lora_A->weight.size(0));
      const double pa = r * static_cast<double>(l.in_features), pb = r * static_cast<double>(l.out_features);
      const bool ta = trains(l.lora_A->weight), tb = trains(l.lora_B->weight);
      f += 2 * pa * rows * (1 + (grad_below ? 1 : 0) + (ta ? 1 : 0));
      f += 2 * pb * rows * (1 + (grad_below || ta ? 1 : 0) + (tb ? 1 : 0));
      trainable = trainable || ta || tb;
    }
    grad_below = grad_below || trainable;
    return f;
  }
  // Weightless matmuls (attention scores): forward, and twice that when gradients flow through them.
  double scores(double forward) const { return forward * (grad_below ? 3 : 1); }
};

double count(Counter& c, torch::nn::Module& m, double rows) {
  double f = 0;
  for (auto& [name, l] : named_linears(m)) {
    (void)name;
    f += c.linear(*l, rows);
  }
  return f;
}

// Whether any parameter of `m` trains (a norm, a layer scale, an embedding: gradients flow from there on).
bool any_trains(torch::nn::Module& m) {
  for (auto& p : m.parameters())
    if (p.requires_grad()) return true;
  return false;
}

}  // namespace

StepFlops step_flops(PhantomModelImpl& model, const StepWork& w) {
  StepFlops out;
  Counter c;
  const auto& vc = model.cfg.vision;
  const auto& lc = model.cfg.llm;
  if (w.tiles > 0) {
    const double g = static_cast<double>(vc.image_size / vc.patch_size);
    const double vt = 1 + g * g;  // tokens per tile, CLS included
    const double tiles = static_cast<double>(w.tiles);
    auto& vm = *model.vision_model;
    const auto& conv = vm.embeddings->patch_embedding->weight;
    out.vision += 2 * static_cast<double>(conv.numel()) * g * g * tiles * (1 + (trains(conv) ? 1 : 0));
    c.grad_below = any_trains(*vm.embeddings);
    for (auto& block : *vm.layers) {
      auto* b = block->as<VisionLayerImpl>();
      if (any_trains(*b->norm1) || trains(b->ls1)) c.grad_below = true;
      out.vision += c.linear(*b->attn->qkv, vt * tiles);
      out.attention += c.scores(4 * static_cast<double>(vc.hidden_size) * vt * vt * tiles);
      out.vision += c.linear(*b->attn->proj, vt * tiles);
      if (any_trains(*b->norm2) || trains(b->ls2)) c.grad_below = true;
      out.vision += count(c, *b->mlp, vt * tiles);
    }
    if (any_trains(*model.vision_proj->ln)) c.grad_below = true;  // the LayerNorm before fc1
    out.projector = count(c, *model.vision_proj, static_cast<double>(model.tokens_per_tile()) * tiles);
  }
  auto& lm = *model.language_model;
  if (trains(lm.embed_tokens->weight)) c.grad_below = true;
  const double T = static_cast<double>(w.tokens), H = static_cast<double>(lc.num_heads);
  const double Hk = static_cast<double>(lc.num_kv_heads), D = static_cast<double>(lc.head_dim());
  const bool phantom = model.cfg.phantom != "off";
  for (auto& layer : *lm.layers) {
    auto* l = layer->as<DecoderLayerImpl>();
    if (any_trains(*l->input_layernorm)) c.grad_below = true;
    auto& a = *l->self_attn;
    out.decoder += c.linear(*a.qkv_proj, T);
    if (phantom) {
      // Xq / Xk / Xv: linear_q and linear_o on every token and head; linear_k / linear_v read the sos only.
      out.decoder += c.linear(*a.xattn_query_phantom->linear_q, T * H) + c.linear(*a.xattn_query_phantom->linear_o, T * H);
      for (auto* x : {a.xattn_key_phantom.get(), a.xattn_value_phantom.get()})
        out.decoder += c.linear(*x->linear_q, T * Hk) + c.linear(*x->linear_o, T * Hk);
      if (a.gating_phantom_1) out.decoder += c.linear(*a.gating_phantom_1, T * H) + c.linear(*a.gating_phantom_2, T * H);
    }
    const double dk = phantom ? 2 * D : D;
    out.attention += c.scores(4 * H * dk * static_cast<double>(w.row_length) * T);
    out.decoder += c.linear(*a.o_proj, T);
    if (any_trains(*l->post_attention_layernorm)) c.grad_below = true;
    out.decoder += count(c, *l->mlp, T);
  }
  if (any_trains(*lm.norm)) c.grad_below = true;
  const double rows = static_cast<double>(w.head_rows);
  if (lm.lm_head) {
    out.head = c.linear(*lm.lm_head, rows);
  } else {
    const double P = static_cast<double>(lc.vocab_size) * static_cast<double>(lc.hidden_size);
    out.head = 2 * P * rows * (1 + (c.grad_below ? 1 : 0) + (trains(lm.embed_tokens->weight) ? 1 : 0));
  }
  return out;
}

double bf16_peak_tflops(const std::string& device_name) {
  std::string n = device_name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char ch) { return std::toupper(ch); });
  // Dense bf16 tensor-core TFLOP/s (fp32 accumulate) from the vendors' datasheets (half the "with sparsity"
  // figures); the more specific names first.
  static const std::pair<const char*, double> table[] = {
      {"H200 NVL", 835.0}, {"H200", 989.0},  {"H100 NVL", 835.0}, {"H100 PCIE", 756.0}, {"H100", 989.0},
      {"A100", 312.0},     {"A6000", 154.8}, {"RTX 3090 TI", 0.0}, {"RTX 3090", 71.0}};  // 3090 Ti: no figure
  for (const auto& [key, tflops] : table)
    if (n.find(key) != std::string::npos) return tflops;
  return 0;
}

std::string device_name(const c10::Device& device) {
#ifdef PHANTOM_HAS_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index())->name;
#endif
  return device.str();
}

double peak_tflops_for(const c10::Device& device, double configured) {
  if (configured > 0) return configured;
  return device.is_cuda() ? bf16_peak_tflops(device_name(device)) : 0.0;
}

}  // namespace phantom::recipe
