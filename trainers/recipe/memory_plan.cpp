#include "trainers/recipe/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>

#include "trainers/recipe/head_loss.h"

namespace phantom::recipe {

int64_t PlannedTensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

namespace {

void linear(std::vector<PlannedTensor>& out, const std::string& name, int64_t in, int64_t o, bool bias) {
  out.push_back({name + ".weight", {o, in}, true});
  if (bias) out.push_back({name + ".bias", {o}, false});
}

void vision_norm(std::vector<PlannedTensor>& out, const std::string& name, const VisionConfig& v, int64_t dim) {
  out.push_back({name + ".weight", {dim}, false});
  if (v.norm_type != "rms_norm") out.push_back({name + ".bias", {dim}, false});
}

}  // namespace

// Mirrors the constructors of phantom/model (vision.cpp, model.cpp, decoder.cpp, attention.cpp) in their
// registration order; tests/test_memory_plan.cpp compares it with the module's named_parameters.
std::vector<PlannedTensor> model_tensors(const ModelConfig& cfg) {
  std::vector<PlannedTensor> t;
  const auto& v = cfg.vision;
  const int64_t C = v.hidden_size, g = v.image_size / v.patch_size;
  t.push_back({"vision_model.embeddings.class_embedding", {1, 1, C}, false});
  t.push_back({"vision_model.embeddings.position_embedding", {1, 1 + g * g, C}, false});
  t.push_back({"vision_model.embeddings.patch_embedding.weight", {C, 3, v.patch_size, v.patch_size}, false});
  t.push_back({"vision_model.embeddings.patch_embedding.bias", {C}, false});
  for (int64_t i = 0; i < v.num_layers; ++i) {
    const std::string p = "vision_model.encoder.layers." + std::to_string(i) + ".";
    t.push_back({p + "ls1", {C}, false});
    t.push_back({p + "ls2", {C}, false});
    vision_norm(t, p + "norm1", v, C);
    linear(t, p + "attn.qkv", C, 3 * C, v.qkv_bias);
    linear(t, p + "attn.proj", C, C, true);
    if (v.qk_normalization) {
      vision_norm(t, p + "attn.q_norm", v, C);
      vision_norm(t, p + "attn.k_norm", v, C);
    }
    vision_norm(t, p + "norm2", v, C);
    linear(t, p + "mlp.fc1", C, v.intermediate_size, true);
    linear(t, p + "mlp.fc2", v.intermediate_size, C, true);
  }
  const int64_t r = static_cast<int64_t>(std::lround(1.0 / cfg.downsample_ratio));
  const int64_t pin = C * r * r, H = cfg.llm.hidden_size;
  t.push_back({"vision_proj.0.weight", {pin}, false});
  t.push_back({"vision_proj.0.bias", {pin}, false});
  linear(t, "vision_proj.1", pin, H, true);
  linear(t, "vision_proj.3", H, H, true);
  const auto& l = cfg.llm;
  const int64_t D = l.head_dim();
  t.push_back({"language_model.model.embed_tokens.weight", {l.vocab_size, H}, false});
  for (int64_t i = 0; i < l.num_layers; ++i) {
    const std::string p = "language_model.model.layers." + std::to_string(i) + ".";
    t.push_back({p + "input_layernorm.weight", {H}, false});
    linear(t, p + "self_attn.qkv_proj", H, (l.num_heads + 2 * l.num_kv_heads) * D, l.attention_bias);
    linear(t, p + "self_attn.o_proj", l.num_heads * D, H, l.family == "internlm2" && l.attention_bias);
    if (cfg.phantom != "off") {
      for (const char* x : {"xattn_query_phantom", "xattn_key_phantom", "xattn_value_phantom"})
        for (const char* lin : {"linear_q", "linear_k", "linear_v", "linear_o"})
          linear(t, p + "self_attn." + x + "." + lin, D, D, false);
      if (cfg.phantom == "gate") {
        linear(t, p + "self_attn.gating_phantom_1", D, 1, true);
        linear(t, p + "self_attn.gating_phantom_2", D, 1, true);
      }
    }
    t.push_back({p + "post_attention_layernorm.weight", {H}, false});
    linear(t, p + "mlp.gate_up_proj", H, 2 * l.intermediate_size, false);
    linear(t, p + "mlp.down_proj", l.intermediate_size, H, false);
  }
  t.push_back({"language_model.model.norm.weight", {H}, false});
  if (!l.tie_word_embeddings) linear(t, "language_model.lm_head", H, l.vocab_size, false);
  return t;
}

namespace {

bool search_any(const std::string& s, const std::vector<std::regex>& res) {
  for (auto& r : res)
    if (std::regex_search(s, r)) return true;
  return false;
}

std::vector<std::regex> compile(const std::vector<std::string>& patterns, const std::string& key) {
  std::vector<std::regex> out;
  for (auto& p : patterns) {
    try {
      out.emplace_back(p);
    } catch (const std::regex_error& e) {
      throw std::runtime_error(key + ": '" + p + "' is not a valid regex: " + e.what());
    }
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Where gradients flow: a ViT block / decoder layer keeps activations when a tensor in it or below it trains.
struct Flow {
  std::vector<bool> vision_trains, decoder_trains;  // per block / layer: something in it trains (or is adapted)
  bool vision_embed = false, projector = false, embed = false;
  bool decoder_linears = false;  // a decoder Linear (qkv, o, gate_up, down) trains or carries an adapter
  bool vision_linears = false;   // the same for the ViT's qkv, proj, fc1, fc2
  bool phantom = false;          // the Phantom tensors train
  int64_t lora_rank = 0;
};

int64_t layer_index(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return -1;
  return std::stoll(name.substr(prefix.size()));
}

// Elements kept for backward per token by one block whose gradients flow. These are the tensors autograd saves in
// our forward (phantom/model/attention.cpp, decoder.cpp, vision.cpp), counted against the caching allocator's
// accounting at the 0.5B widths (docs/scale.md): a frozen Linear (plain or int8) keeps nothing of its input, a
// trained or adapted one keeps it; a tensor saved through a view keeps the whole buffer it views.
struct PerToken {
  double fp32 = 0, compute = 0;  // elements held in fp32 (the residual stream) and in the compute dtype
};

struct DecoderShape {
  double H, I, Q, K;  // hidden, MLP, all query heads x head dim, all key (= value) heads x head dim
  double heads, kv_heads;
};

PerToken decoder_layer_act(const LlmConfig& l, const Flow& f, bool phantom_on, bool segments) {
  const double D = static_cast<double>(l.head_dim());
  const DecoderShape s{static_cast<double>(l.hidden_size), static_cast<double>(l.intermediate_size),
                       static_cast<double>(l.num_heads) * D, static_cast<double>(l.num_kv_heads) * D,
                       static_cast<double>(l.num_heads), static_cast<double>(l.num_kv_heads)};
  PerToken p;
  p.fp32 = 2 * s.H;                     // the layer's input (or its recomputed output) and h after attention
  p.compute = (s.Q + 2 * s.K)           // the fused qkv output (v is a view of it, kept by its consumer)
              + (s.Q + s.K)             // q and k after RoPE
              + 2 * s.I + s.I;          // gate_up output (SiLU's input is a view of it), SiLU output
  double attn = s.Q;                    // SDPA's output (its q, k, v are the tensors above)
  if (phantom_on) {
    // Three XAttentions (on q, k, v): each keeps linear_q's output, its GELU, the attention output y and linear_o's
    // output (GELU input); linear_q's input is q / k / v itself; plus each one's scores over its sos heads. Then the
    // concatenated q, k, v of head dim 2D that SDPA saves, and its 2D-wide output.
    const double trained = f.phantom ? 4 : 3;  // frozen: linear_o keeps no input
    p.compute += trained * (s.Q + 2 * s.K) + s.heads * s.heads + 2 * s.kv_heads * s.kv_heads;
    p.compute += 2 * s.Q + 4 * s.K;
    attn = 2 * s.Q;
  }
  // Segment attention (shared-prefix and packed rows) runs SDPA per segment and concatenates: the parts and the
  // concatenation are both kept.
  p.compute += segments ? 2 * attn : attn;
  if (f.decoder_linears)  // the inputs of qkv, o, gate_up and down, and each adapter's A output
    p.compute += 2 * s.H + s.Q + s.I + 4.0 * static_cast<double>(f.lora_rank);
  return p;
}

PerToken vision_block_act(const VisionConfig& v, bool linears_train, int64_t lora_rank) {
  const double C = static_cast<double>(v.hidden_size), M = static_cast<double>(v.intermediate_size);
  PerToken p;
  p.fp32 = 2 * C;                      // x (norm1), h (norm2)
  p.compute = 3 * C + C + M;           // q, k, v, attention output, fc1 output (GELU input)
  if (linears_train) p.compute += 3 * C + M + 4.0 * static_cast<double>(lora_rank);  // Linear inputs, GELU output
  return p;
}

int64_t bytes_of(const PerToken& p, double tokens, int compute_bytes) {
  return static_cast<int64_t>(tokens * (4 * p.fp32 + compute_bytes * p.compute));
}

// A stack of blocks (ViT) or layers (decoder): backward keeps a block's activations once gradients flow through it,
// from the first one that trains (or from the start when its input already carries a gradient). `full`: every
// such block's activations; `ckpt`: the fp32 input each keeps under checkpointing; `layer`: one block's.
struct StackActivations {
  bool flows = false;
  int64_t full = 0, ckpt = 0, layer = 0;
};
StackActivations stack_activations(bool flows_in, const std::vector<bool>& trains, double tokens, double width,
                                   int64_t layer_bytes) {
  StackActivations r;
  r.flows = flows_in;
  for (const bool t : trains) {
    r.flows = r.flows || t;
    if (!r.flows) continue;
    r.full += layer_bytes;
    r.ckpt += static_cast<int64_t>(4 * tokens * width);  // the block's input
    r.layer = layer_bytes;
  }
  return r;
}

}  // namespace

// long: one account read top to bottom (weights by role, gradients, optimiser state, buckets, then the four moments
// whose largest is the step's peak), each term with the comment that says what it counts; split, the terms would
// be read out of order.
MemoryPlan plan_memory(const PlanInputs& in) {
  MemoryPlan m;
  const auto& mc = in.model;
  const auto tensors = model_tensors(mc);
  const auto trainable = compile(in.stage.trainable, "stage " + in.stage.name + " trainable");
  const bool lora = in.stage.lora.rank > 0;
  const auto targets = lora ? compile(in.stage.lora.targets, "stage " + in.stage.name + " lora.targets")
                            : std::vector<std::regex>{};
  const int cb = in.bf16 ? 2 : 4;
  Flow flow;
  flow.vision_trains.assign(static_cast<size_t>(mc.vision.num_layers), false);
  flow.decoder_trains.assign(static_cast<size_t>(mc.llm.num_layers), false);
  flow.lora_rank = in.stage.lora.rank;
  int64_t largest_int8 = 0, largest_trained = 0;
  static const std::regex vision_linear(R"(\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.)");
  static const std::regex decoder_linear(R"(\.(qkv_proj|o_proj|gate_up_proj|down_proj)\.)");
  // Trained elements (gradients) of the ViT, whose backward comes last: per block, and its embeddings.
  std::vector<int64_t> vision_grads(static_cast<size_t>(mc.vision.num_layers), 0);
  int64_t vision_embed_grads = 0;
  auto count_grad = [&](const std::string& name, int64_t elems) {
    const int64_t vi = layer_index(name, "vision_model.encoder.layers.");
    if (vi >= 0) vision_grads[static_cast<size_t>(vi)] += elems;
    else if (name.rfind("vision_model.", 0) == 0) vision_embed_grads += elems;
  };
  auto mark = [&](const std::string& name) {
    const int64_t vi = layer_index(name, "vision_model.encoder.layers.");
    const int64_t di = layer_index(name, "language_model.model.layers.");
    if (name.find("_phantom") != std::string::npos) flow.phantom = true;
    else if (vi >= 0 && std::regex_search(name, vision_linear)) flow.vision_linears = true;
    else if (di >= 0 && std::regex_search(name, decoder_linear)) flow.decoder_linears = true;
    if (vi >= 0) flow.vision_trains[static_cast<size_t>(vi)] = true;
    else if (di >= 0) flow.decoder_trains[static_cast<size_t>(di)] = true;
    else if (name.rfind("vision_model.", 0) == 0) flow.vision_embed = true;
    else if (name.rfind("vision_proj.", 0) == 0) flow.projector = true;
    else if (name.rfind("language_model.model.embed_tokens", 0) == 0) flow.embed = true;
  };
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    m.n_params += n;
    const std::string module = t.linear ? t.name.substr(0, t.name.size() - 7) : "";  // strip ".weight"
    const bool adapted = t.linear && lora && !ends_with(module, "lm_head") && search_any(module, targets);
    const bool adapted_bias = lora && !t.linear && ends_with(t.name, ".bias") &&
                              search_any(t.name.substr(0, t.name.size() - 5), targets);
    const bool trains = !adapted && !adapted_bias && search_any(t.name, trainable);
    if (adapted) {
      const int64_t a = in.stage.lora.rank * (t.shape[0] + t.shape[1]);
      m.n_lora += a;
      m.lora_fp32 += 4 * a;
      mark(t.name);
      count_grad(t.name, a);
    }
    if (trains || adapted) largest_trained = std::max(largest_trained, adapted ? in.stage.lora.rank * std::max(t.shape[0], t.shape[1]) : n);
    if (trains) {
      m.n_trainable += n;
      m.trainable_fp32 += 4 * n;
      mark(t.name);
      count_grad(t.name, n);
      continue;
    }
    const bool embedding = ends_with(t.name, "embed_tokens.weight");
    const bool int8 = t.linear && !ends_with(module, "lm_head") && (in.stage.base_int8 || (adapted && in.stage.lora.base_int8));
    if (int8) {
      m.frozen_int8 += n + 4 * t.shape[0];  // int8 matrix + fp32 scale per row
      largest_int8 = std::max(largest_int8, n);
    } else if ((t.linear || embedding) && in.frozen_bytes == 2) {
      m.frozen_half += 2 * n;
    } else {
      m.frozen_fp32 += 4 * n;
    }
  }
  const int64_t trained_elems = m.n_trainable + m.n_lora;
  const int N = std::max(1, in.ranks);
  // Gradients: fp32 like their masters; ZeRO-2 keeps this rank's share (plus the buckets in flight).
  m.gradients = 4 * trained_elems / (in.zero_stage >= 2 ? N : 1);
  m.adamw = 8 * trained_elems / (in.zero_stage >= 1 ? N : 1);
  // Autocast keeps one bf16 copy of each trained matrix for the whole forward and backward (its cast cache).
  m.autocast_copies = in.bf16 ? 2 * trained_elems : 0;
  // Two bucket buffers in flight (trainers/distributed/buckets.cpp) of fp32 gradients.
  m.buckets = N > 1 ? static_cast<int64_t>(2.0 * in.bucket_mb * 1e6) : 0;

  // Activations of one micro-batch.
  const int64_t B = in.micro_batch;
  const int64_t g = mc.vision.image_size / mc.vision.patch_size;
  const int64_t tiles_per_q = in.max_tiles + (in.max_tiles > 1 ? 1 : 0);
  m.tiles = B * tiles_per_q;
  m.vision_tokens = m.tiles * (1 + g * g);
  m.decoder_tokens = B * in.max_length;
  const double vt = static_cast<double>(m.vision_tokens), dt = static_cast<double>(m.decoder_tokens);

  const int64_t vision_block = bytes_of(vision_block_act(mc.vision, flow.vision_linears, flow.lora_rank), vt, cb);
  const auto vis = stack_activations(flow.vision_embed, flow.vision_trains, vt, static_cast<double>(mc.vision.hidden_size),
                                     vision_block);
  m.vision_act_full = vis.full;
  m.vision_act_ckpt = vis.ckpt;
  // Pixel-shuffled features through the projector, and the decoder's spliced input embeddings.
  const double shuffled = vt * static_cast<double>(g * g) / static_cast<double>(1 + g * g) * mc.downsample_ratio *
                          mc.downsample_ratio;
  const double H = static_cast<double>(mc.llm.hidden_size);
  const int64_t projector = static_cast<int64_t>(
      shuffled * (4.0 * static_cast<double>(mc.vision.hidden_size) / (mc.downsample_ratio * mc.downsample_ratio) * 2 + cb * 2 * H));

  const int64_t decoder_layer = bytes_of(decoder_layer_act(mc.llm, flow, mc.phantom != "off", in.preference), dt, cb);
  const auto dec = stack_activations(vis.flows || flow.projector || flow.embed, flow.decoder_trains, dt, H, decoder_layer);
  const int64_t stream = static_cast<int64_t>(4 * dt * H * 3);  // input embeddings, final norm input and output
  m.decoder_act_full = dec.full + stream;
  m.decoder_act_ckpt = dec.ckpt + stream;
  m.vision_act = (in.vision_checkpointing ? m.vision_act_ckpt : m.vision_act_full) + projector;
  m.decoder_act = in.decoder_checkpointing ? m.decoder_act_ckpt : m.decoder_act_full;

  // On top of what is kept, the step holds one transient at a time (measured by phase, docs/scale.md): in the
  // forward, the head's one reused (rows, V) fp32 chunk of logits, softmaxed in place (head_loss.cpp); in the
  // backward of each block, that block's recomputed activations when its stack is checkpointed, the gradient of
  // its widest tensor (gate_up's 2I outputs, the ViT's fc1 outputs) and the float copy of an int8 weight that
  // Int8Matmul dequantises again (the largest, gate_up).
  const int64_t V = mc.llm.vocab_size;
  const int64_t rows = std::min(head_chunk_rows(V), in.head_rows > 0 ? in.head_rows : m.decoder_tokens);
  m.head_chunk = 4 * rows * V;
  const int64_t dequant = static_cast<int64_t>(cb) * largest_int8;
  const int64_t decoder_backward =
      dec.flows ? (in.decoder_checkpointing ? dec.layer : 0) +
                      static_cast<int64_t>(cb * dt * 2 * static_cast<double>(mc.llm.intermediate_size))
                : 0;
  const int64_t vision_backward =
      vis.flows ? (in.vision_checkpointing ? vis.layer : 0) +
                      static_cast<int64_t>(cb * vt * static_cast<double>(mc.vision.intermediate_size))
                : 0;
  m.backward_block = std::max(decoder_backward, vision_backward) + dequant;

  // Gradients appear as backward reaches their tensors (the trainer sets them to none after each step), so the
  // step's peak is the largest of four moments: the head's forward (every kept activation, no gradient yet); the
  // backward of the lowest decoder layer (bounded by every kept activation plus the gradients of the head, the
  // final norm and every decoder layer); the backward of the top ViT block (the decoder's activations freed; every
  // gradient but the lower ViT blocks'); and the optimiser step (every gradient, no activation).
  const int64_t zero2 = in.zero_stage >= 2 ? N : 1;
  int64_t vision_block_grads = 0, top_block = 0;
  for (auto e : vision_grads) vision_block_grads += e, top_block = std::max(top_block, e);
  const int64_t above_vit = trained_elems - vision_block_grads - vision_embed_grads;  // head, decoder, projector
  const int64_t grads_in_decoder_backward = 4 * above_vit / zero2;
  const int64_t decoder_phase = m.vision_act + m.decoder_act +
                                std::max(m.head_chunk, dec.flows ? decoder_backward + dequant + grads_in_decoder_backward : 0);
  const int64_t vision_phase = vis.flows ? m.vision_act + vision_backward + dequant + 4 * (above_vit + top_block) / zero2 : 0;
  // AdamW (torch's, one tensor at a time) holds a temporary of the largest trained tensor's size.
  const int64_t optimiser_phase = m.gradients + 4 * largest_trained;
  m.step_peak = std::max({decoder_phase, vision_phase, optimiser_phase});
  return m;
}

int64_t largest_micro_batch(PlanInputs in, int64_t device_bytes, int64_t limit) {
  int64_t best = 0;
  for (int64_t b = 1; b <= limit; ++b) {
    in.micro_batch = b;
    if (plan_memory(in).total() > device_bytes) break;
    best = b;
  }
  return best;
}

std::vector<std::string> changes_that_fit(const PlanInputs& in, int64_t device_bytes) {
  std::vector<std::pair<std::string, PlanInputs>> tries;
  auto with = [&](const std::string& what, auto change) {
    PlanInputs p = in;
    p.micro_batch = 1;
    change(p);
    tries.emplace_back(what, p);
  };
  if (!in.decoder_checkpointing) with("activation_checkpointing: true", [](PlanInputs& p) { p.decoder_checkpointing = true; });
  if (!in.vision_checkpointing) with("vision_checkpointing: true", [](PlanInputs& p) { p.vision_checkpointing = true; });
  if (!in.stage.base_int8) with("stages." + in.stage.name + ".base_int8: true", [](PlanInputs& p) { p.stage.base_int8 = true; });
  if (in.frozen_bytes == 4) with("run.frozen_dtype: bf16", [](PlanInputs& p) { p.frozen_bytes = 2; });
  if (in.zero_stage < 2 && in.ranks > 1) with("distributed.zero_stage: 2", [](PlanInputs& p) { p.zero_stage = 2; });
  for (int64_t len = in.max_length / 2; len >= 512; len /= 2)
    with("data.max_length: " + std::to_string(len), [len](PlanInputs& p) { p.max_length = len; });
  for (int64_t t = in.max_tiles - 2; t >= 1; t -= 2)
    with("data.max_tiles: " + std::to_string(t), [t](PlanInputs& p) { p.max_tiles = t; });
  with("all of checkpointing, int8 base, ZeRO-2", [](PlanInputs& p) {
    p.decoder_checkpointing = p.vision_checkpointing = p.stage.base_int8 = true;
    p.frozen_bytes = 2;
    if (p.ranks > 1) p.zero_stage = 2;
  });
  std::vector<std::string> out;
  for (auto& [what, p] : tries) {
    const int64_t total = plan_memory(p).total();
    if (total <= device_bytes) out.push_back(what + " -> " + gib(total));
  }
  return out;
}

PlanInputs plan_inputs(const RunConfig& cfg, size_t s, int ranks) {
  if (s >= cfg.stages.size()) throw std::runtime_error("plan: the config has no stage " + std::to_string(s));
  PlanInputs in;
  in.model = cfg.model;
  in.stage = cfg.stages[s];
  in.bf16 = cfg.run.precision != "fp32";  // auto is bf16 on CUDA, what a plan is made for
  const bool frozen_half = cfg.run.frozen_dtype == "bf16" || (cfg.run.frozen_dtype == "auto" && in.bf16);
  in.frozen_bytes = frozen_half ? 2 : 4;
  in.decoder_checkpointing = cfg.activation_checkpointing;
  in.vision_checkpointing = cfg.vision_checkpointing;
  in.max_length = cfg.data.max_length;
  in.max_tiles = cfg.data.max_tiles;
  in.micro_batch = cfg.data.batch_size;
  in.preference = needs_preference_data(in.stage.loss);
  in.ranks = ranks;
  in.zero_stage = cfg.distributed.zero_level();
  in.bucket_mb = cfg.distributed.bucket_mb;
  return in;
}

std::string gib(int64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024)); }

}  // namespace phantom::recipe
