#include "phantom/io/weights.h"

#include <cmath>
#include <regex>
#include <set>
#include <sstream>

namespace phantom {

namespace {

// initializer_range of the LLMs the Phantom modules live in (every released config): the std of fresh Phantom weights.
constexpr double kPhantomInitStd = 0.02;

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

const at::Tensor& need(const StateDict& sd, const std::string& name) {
  auto it = sd.find(name);
  if (it == sd.end()) throw std::runtime_error("checkpoint is missing tensor " + name);
  return it->second;
}

// InternLM2 renames, applied to the part after the prefix (ours <- theirs).
const std::vector<std::pair<std::string, std::string>> kInternLM2Names = {
    {"model.tok_embeddings.", "model.embed_tokens."},
    {"output.", "lm_head."},
    {".attention.wo.", ".self_attn.o_proj."},
    {".feed_forward.w2.", ".mlp.down_proj."},
    {".attention_norm.", ".input_layernorm."},
    {".ffn_norm.", ".post_attention_layernorm."},
    {".attention.xattn_", ".self_attn.xattn_"},
    {".attention.gating_phantom", ".self_attn.gating_phantom"},
};

int layer_count(const StateDict& sd, const std::string& prefix) {
  int n = 0;
  const std::regex re("^" + std::regex_replace(prefix, std::regex(R"([.])"), R"(\.)") + R"(model\.layers\.(\d+)\.)");
  std::smatch m;
  for (auto& kv : sd)
    if (std::regex_search(kv.first, m, re)) n = std::max(n, std::stoi(m[1]) + 1);
  return n;
}

}  // namespace

StateDict llm_from_hf(const StateDict& hf, const LlmConfig& cfg, const std::string& prefix) {
  const int64_t H = cfg.num_heads, Hk = cfg.num_kv_heads, D = cfg.head_dim(), g = H / Hk;
  StateDict out;
  std::set<std::string> consumed;
  const int layers = layer_count(hf, prefix);
  for (int i = 0; i < layers; ++i) {
    const std::string p = prefix + "model.layers." + std::to_string(i) + ".";
    // Split q/k/v and gate/up (Qwen2, and Llama-named InternLM2 weights of transformers' InternVL): fused.
    if (hf.count(p + "self_attn.q_proj.weight")) {
      for (const char* kind : {"weight", "bias"}) {
        const std::string q = p + "self_attn.q_proj." + kind;
        if (!hf.count(q)) continue;
        const std::string k = p + "self_attn.k_proj." + kind, v = p + "self_attn.v_proj." + kind;
        out[p + "self_attn.qkv_proj." + kind] = torch::cat({need(hf, q), need(hf, k), need(hf, v)}, 0);
        consumed.insert({q, k, v});
      }
      const std::string gate = p + "mlp.gate_proj.weight", up = p + "mlp.up_proj.weight";
      if (hf.count(gate)) {
        out[p + "mlp.gate_up_proj.weight"] = torch::cat({need(hf, gate), need(hf, up)}, 0);
        consumed.insert({gate, up});
      }
    } else if (cfg.family == "internlm2") {
      for (const char* kind : {"weight", "bias"}) {
        const std::string name = p + "attention.wqkv." + kind;
        if (!hf.count(name)) continue;
        auto w = hf.at(name);
        auto grouped = w.reshape({Hk, g + 2, D, -1});  // bias: trailing dim 1
        auto q = grouped.narrow(1, 0, g).reshape({H * D, -1});
        auto k = grouped.select(1, g).reshape({Hk * D, -1});
        auto v = grouped.select(1, g + 1).reshape({Hk * D, -1});
        auto fused = torch::cat({q, k, v}, 0);
        out[p + "self_attn.qkv_proj." + kind] = w.dim() == 1 ? fused.reshape({-1}) : fused;
        consumed.insert(name);
      }
      const std::string w1 = p + "feed_forward.w1.weight", w3 = p + "feed_forward.w3.weight";
      if (hf.count(w1)) {
        out[p + "mlp.gate_up_proj.weight"] = torch::cat({need(hf, w1), need(hf, w3)}, 0);
        consumed.insert({w1, w3});
      }
    }
  }
  for (auto& kv : hf) {
    if (consumed.count(kv.first)) continue;
    std::string name = kv.first;
    if (cfg.family == "internlm2" && starts_with(name, prefix)) {
      std::string rest = name.substr(prefix.size());
      for (auto& [theirs, ours] : kInternLM2Names) rest = replace_once(rest, theirs, ours);
      name = prefix + rest;
    }
    out[name] = kv.second;
  }
  return out;
}

StateDict vision_from_hf(const StateDict& sd) {
  static const std::vector<std::pair<std::string, std::string>> native = {
      {"embeddings.cls_token", "embeddings.class_embedding"},
      {"embeddings.position_embeddings", "embeddings.position_embedding"},
      {"embeddings.patch_embeddings.projection.", "embeddings.patch_embedding."},
      {"encoder.layer.", "encoder.layers."},
      {".lambda_1", ".ls1"},
      {".lambda_2", ".ls2"},
      {".attention.projection_layer.", ".attn.proj."},
      {".attention.", ".attn."},
      {".layernorm_before.", ".norm1."},
      {".layernorm_after.", ".norm2."}};
  StateDict out;
  for (auto& [name, t] : sd) {
    std::string rest;
    for (const char* p : {"vision_model.", "model.vision_tower.", "vision_tower.", ""})
      if (starts_with(name, p)) {
        rest = name.substr(std::string(p).size());
        break;
      }
    if (!starts_with(rest, "embeddings.") && !starts_with(rest, "encoder.")) continue;  // not a ViT tensor
    for (auto& [theirs, ours] : native) rest = replace_once(rest, theirs, ours);
    out["vision_model." + rest] = t;
  }
  // transformers' split q/k/v -> the fused qkv of the remote code (rows [q | k | v]).
  for (auto it = out.begin(); it != out.end();) {
    const auto pos = it->first.find(".attn.q_proj.");
    if (pos == std::string::npos) {
      ++it;
      continue;
    }
    const std::string pre = it->first.substr(0, pos), kind = it->first.substr(pos + 13);
    const std::string k = pre + ".attn.k_proj." + kind, v = pre + ".attn.v_proj." + kind;
    out[pre + ".attn.qkv." + kind] = torch::cat({it->second, need(out, k), need(out, v)}, 0);
    out.erase(k), out.erase(v);
    it = out.erase(it);
  }
  return out;
}

StateDict vlm_to_ours(const StateDict& sd, const std::string& layout) {
  if (layout == "internvl_chat") {
    StateDict out;
    for (auto& [name, t] : sd) out[starts_with(name, "mlp1.") ? "vision_proj." + name.substr(5) : name] = t;
    return out;
  }
  if (layout != "internvl_hf") throw std::runtime_error("unknown checkpoint layout " + layout);
  StateDict out = vision_from_hf(sd);
  static const std::vector<std::pair<std::string, std::string>> proj = {
      {"layer_norm.", "vision_proj.0."}, {"linear_1.", "vision_proj.1."}, {"linear_2.", "vision_proj.3."}};
  for (auto& [full, t] : sd) {
    std::string name = starts_with(full, "model.") ? full.substr(6) : full;
    if (starts_with(name, "vision_tower.")) continue;
    if (starts_with(name, "multi_modal_projector.")) {
      std::string rest = name.substr(22);
      for (auto& [theirs, ours] : proj)
        if (starts_with(rest, theirs)) rest = ours + rest.substr(theirs.size());
      out[rest] = t;
    } else if (starts_with(name, "language_model.model.") || starts_with(name, "language_model.lm_head.")) {
      out[name] = t;  // transformers < 4.52 layout
    } else if (starts_with(name, "language_model.")) {
      out["language_model.model." + name.substr(15)] = t;
    } else if (starts_with(full, "lm_head.")) {
      out["language_model." + full] = t;
    } else {
      out[full] = t;  // reported as unexpected
    }
  }
  return out;
}

StateDict llm_to_hf(const StateDict& ours, const LlmConfig& cfg, const std::string& prefix) {
  const int64_t H = cfg.num_heads, Hk = cfg.num_kv_heads, D = cfg.head_dim(), g = H / Hk;
  StateDict out;
  for (auto& [name, t] : ours) {
    const bool llm = starts_with(name, prefix + "model.") || starts_with(name, prefix + "lm_head.");
    if (!llm || cfg.family == "phi3") {
      out[name] = t;
      continue;
    }
    const auto qkv = name.find("self_attn.qkv_proj.");
    const auto gu = name.find("mlp.gate_up_proj.");
    std::string kind = name.substr(name.rfind('.') + 1);
    if (qkv != std::string::npos) {
      const std::string p = name.substr(0, qkv);
      auto q = t.narrow(0, 0, H * D), k = t.narrow(0, H * D, Hk * D), v = t.narrow(0, (H + Hk) * D, Hk * D);
      if (cfg.family == "qwen2") {
        out[p + "self_attn.q_proj." + kind] = q;
        out[p + "self_attn.k_proj." + kind] = k;
        out[p + "self_attn.v_proj." + kind] = v;
      } else {  // internlm2: interleave per kv group
        const int64_t cols = t.dim() == 2 ? t.size(1) : 1;
        auto packed = torch::cat({q.reshape({Hk, g, D, cols}), k.reshape({Hk, 1, D, cols}), v.reshape({Hk, 1, D, cols})}, 1);
        out[p + "attention.wqkv." + kind] = t.dim() == 2 ? packed.reshape({-1, cols}) : packed.reshape({-1});
      }
      continue;
    }
    if (gu != std::string::npos) {
      const std::string p = name.substr(0, gu);
      const int64_t I = t.size(0) / 2;
      const bool qwen = cfg.family == "qwen2";
      out[p + (qwen ? "mlp.gate_proj." : "feed_forward.w1.") + kind] = t.narrow(0, 0, I);
      out[p + (qwen ? "mlp.up_proj." : "feed_forward.w3.") + kind] = t.narrow(0, I, I);
      continue;
    }
    if (cfg.family == "internlm2") {
      std::string rest = name.substr(prefix.size());
      for (auto& [theirs, ours_name] : kInternLM2Names) rest = replace_once(rest, ours_name, theirs);
      out[prefix + rest] = t;
    } else {
      out[name] = t;
    }
  }
  return out;
}

StateDict module_state_dict(torch::nn::Module& model) {
  StateDict sd;
  std::set<const void*> seen;
  for (auto& p : model.named_parameters())
    if (seen.insert(p.value().unsafeGetTensorImpl()).second) sd[p.key()] = p.value();
  for (auto& b : model.named_buffers()) sd[b.key()] = b.value();
  return sd;
}

std::string LoadReport::summary() const {
  std::ostringstream os;
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << what << " (" << v.size() << "):";
    for (size_t i = 0; i < v.size() && i < 8; ++i) os << " " << v[i];
    if (v.size() > 8) os << " ...";
    os << "; ";
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("mis-shaped", mismatched);
  list("created", created);
  std::string s = os.str();
  return s.empty() ? "all tensors matched" : s.substr(0, s.size() - 2);
}

LoadReport load_state_dict(torch::nn::Module& model, const StateDict& sd, bool strict) {
  LoadReport r;
  auto params = module_state_dict(model);
  torch::NoGradGuard ng;
  for (auto& [name, dst] : params) {
    auto it = sd.find(name);
    if (it == sd.end()) {
      const bool phantom = name.find("_phantom") != std::string::npos;
      if (phantom && !strict) {
        // As the official classes build them fresh: they are nn.Linear inside the LLM, whose _init_weights draws
        // weights from N(0, initializer_range) (0.02 in every released config) and zeroes biases.
        if (dst.dim() == 2) dst.normal_(0.0, kPhantomInitStd);
        else dst.zero_();
        r.created.push_back(name);
      } else {
        r.missing.push_back(name);
      }
      continue;
    }
    const auto& src = it->second;
    if (src.sizes() != dst.sizes()) {
      std::ostringstream os;
      os << name << ": checkpoint " << src.sizes() << " vs model " << dst.sizes();
      r.mismatched.push_back(os.str());
      continue;
    }
    dst.copy_(src);
  }
  for (auto& kv : sd)
    if (!params.count(kv.first)) r.unexpected.push_back(kv.first);
  // A missing core tensor would leave random weights in a "loaded" model: always an error.
  if (!r.mismatched.empty() || !r.missing.empty() || (strict && !r.unexpected.empty()))
    throw std::runtime_error("checkpoint does not match the model: " + r.summary());
  return r;
}

}  // namespace phantom
