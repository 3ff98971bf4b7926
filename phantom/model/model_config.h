// Architecture of a Phantom model: InternViT -> pixel shuffle -> projector -> decoder LLM with the Phantom
// dimension. Read from an HF checkpoint's config.json (phantom/io/hf_config.cpp) or, for models built from scratch,
// from the `model:` section of a YAML config. Defaults are Phantom-0.5B's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "phantom/util/config.h"

namespace phantom {
using config::Check;

struct VisionConfig {
  int64_t image_size = 448;         // tile side in pixels
  int64_t patch_size = 14;          // conv patch embedding kernel and stride
  int64_t hidden_size = 1024;       // ViT width
  int64_t num_layers = 24;          // ViT blocks
  int64_t num_heads = 16;           // ViT attention heads
  int64_t intermediate_size = 4096; // ViT MLP width
  double layer_norm_eps = 1e-6;     // norm epsilon
  std::string norm_type = "layer_norm";  // layer_norm (InternViT-300M) | rms_norm (InternViT-6B)
  bool qk_normalization = false;    // per-head q/k norm (InternViT-6B)
  bool qkv_bias = true;             // bias on the fused qkv projection
  double initializer_factor = 0.1;  // LayerScale init value (ls1/ls2) for models built from scratch

  template <class V>
  void visit(V& v) {
    v.field("image_size", image_size, "tile side in pixels (448 for InternViT-300M)", Check::positive());
    v.field("patch_size", patch_size, "patch side; image_size must be a multiple", Check::positive());
    v.field("hidden_size", hidden_size, "ViT width", Check::positive());
    v.field("num_layers", num_layers, "ViT blocks", Check::positive());
    v.field("num_heads", num_heads, "ViT attention heads", Check::positive());
    v.field("intermediate_size", intermediate_size, "ViT MLP width", Check::positive());
    v.field("layer_norm_eps", layer_norm_eps, "norm epsilon", Check::positive());
    v.field("norm_type", norm_type, "layer_norm | rms_norm", Check::one_of({"layer_norm", "rms_norm"}));
    v.field("qk_normalization", qk_normalization, "per-head q/k norm (InternViT-6B variants)");
    v.field("qkv_bias", qkv_bias, "bias on the qkv projection");
    v.field("initializer_factor", initializer_factor, "LayerScale init for models built from scratch",
            Check::non_negative());
  }
};

struct RopeConfig {
  double theta = 1000000.0;                // base
  std::string type = "default";            // default | linear | dynamic | longrope
  double factor = 1.0;                     // linear / dynamic scaling factor
  int64_t original_max_position_embeddings = 0;  // longrope / dynamic: the pre-training context
  std::vector<double> short_factor;        // longrope per-frequency factors (Phi-3 128k)
  std::vector<double> long_factor;

  template <class V>
  void visit(V& v) {
    v.field("theta", theta, "RoPE base", Check::positive());
    v.field("type", type, "default | linear | dynamic | longrope",
            Check::one_of({"default", "linear", "dynamic", "longrope"}));
    v.field("factor", factor, "linear/dynamic scaling factor", Check::positive());
    v.field("original_max_position_embeddings", original_max_position_embeddings,
            "pre-training context for dynamic/longrope", Check::non_negative());
    v.field("short_factor", short_factor, "longrope factors for short contexts");
    v.field("long_factor", long_factor, "longrope factors for long contexts");
  }
};

struct LlmConfig {
  std::string family = "qwen2";        // qwen2 | internlm2 | phi3: weight layout and chat template
  int64_t hidden_size = 896;
  int64_t intermediate_size = 4864;
  int64_t num_layers = 24;
  int64_t num_heads = 14;
  int64_t num_kv_heads = 2;
  int64_t vocab_size = 151655;
  int64_t max_position_embeddings = 32768;
  double rms_norm_eps = 1e-6;
  bool attention_bias = true;          // q/k/v bias (Qwen2); InternLM2's `bias`: wqkv and wo
  bool tie_word_embeddings = true;     // LM head shares the embedding matrix
  RopeConfig rope;
  std::vector<int64_t> eos_token_ids;  // config.json's eos_token_id (generation stops there); not a YAML key

  int64_t head_dim() const { return hidden_size / num_heads; }

  template <class V>
  void visit(V& v) {
    v.field("family", family, "qwen2 | internlm2 | phi3", Check::one_of({"qwen2", "internlm2", "phi3"}));
    v.field("hidden_size", hidden_size, "decoder width", Check::positive());
    v.field("intermediate_size", intermediate_size, "SwiGLU width", Check::positive());
    v.field("num_layers", num_layers, "decoder layers", Check::positive());
    v.field("num_heads", num_heads, "query heads", Check::positive());
    v.field("num_kv_heads", num_kv_heads, "key/value heads (GQA)", Check::positive());
    v.field("vocab_size", vocab_size, "embedding rows (>= tokenizer size)", Check::positive());
    v.field("max_position_embeddings", max_position_embeddings, "context length", Check::positive());
    v.field("rms_norm_eps", rms_norm_eps, "RMSNorm epsilon", Check::positive());
    v.field("attention_bias", attention_bias, "q/k/v projection bias (Qwen2)");
    v.field("tie_word_embeddings", tie_word_embeddings, "LM head shares the embedding matrix");
    v.section("rope", rope, "rotary position embedding");
  }
};

// Everything a prompt depends on besides the tokenizer, saved with an exported model (config.json
// "phantom_prompt", docs/checkpoints.md) so that `phantom eval` and `phantom generate` build the prompts and tiles the
// model was trained on. Not YAML: the trainer fills it from the data section.
struct PromptConfig {
  std::string chat_template = "auto";       // chatml | phi3 (auto: by the LLM family; exports write the resolved name)
  int64_t max_tiles = 6;                    // dynamic tiling limit
  bool use_thumbnail = true;                // a whole-image tile after the tiles
  std::string image_placement = "prepend";  // prepend | prepend_newline (data.image_placement)
  // Where a sample's images go (data.multi_image): "interleaved" (each <image> where the text writes it, InternVL's
  // convention) or "first_turn" (every image at the start of the first user turn). A checkpoint without the key
  // gets interleaved when it is an official release (no phantom_prompt), first_turn when it is one of our exports
  // from before the rule existed (the only rule they were trained with); hf_config.cpp reads it.
  std::string multi_image = "interleaved";
  std::string source = "defaults";          // where these came from, for logs: config.json or defaults
};

struct ModelConfig {
  std::string path;                  // HF checkpoint directory; empty = build from the fields below
  std::string vision_path;           // InternViT checkpoint for a bare-LLM `path` (docs/start-points.md)
  std::string phantom = "gate";      // gate | sum | mean | off  (paper Table 4 ablations)
  double phantom_eta = 1e-4;         // scale of q*, k* and of the value residual
  double downsample_ratio = 0.5;     // pixel shuffle ratio
  std::string image_token = "<IMG_CONTEXT>";
  int64_t image_token_index = -1;    // id of image_token; -1 = look it up in the tokenizer
  bool strict_load = false;          // fail on any missing/unexpected tensor (else create Phantom tensors)
  PromptConfig prompt;               // the prompt the weights were trained with (config.json; not YAML)
  VisionConfig vision;
  LlmConfig llm;

  template <class V>
  void visit(V& v) {
    v.field("path", path, "HF checkpoint dir to load; empty builds the model below from scratch");
    v.field("vision_path", vision_path, "InternViT checkpoint dir when path is a bare LLM (else the ViT starts from scratch)");
    v.field("phantom", phantom, "Phantom dimension: gate | sum | mean | off (plain LLM)",
            Check::one_of({"gate", "sum", "mean", "off"}));
    v.field("phantom_eta", phantom_eta, "eta: scale of q*, k* and the value residual", Check::non_negative());
    v.field("downsample_ratio", downsample_ratio, "pixel shuffle ratio (0.5 = 4x fewer tokens)", Check::range(0.125, 1));
    v.field("image_token", image_token, "placeholder token replaced by visual tokens");
    v.field("image_token_index", image_token_index, "id of image_token (-1: from the tokenizer)");
    v.field("strict_load", strict_load, "fail on any missing/unexpected/mis-shaped checkpoint tensor");
    v.section("vision", vision, "InternViT vision encoder");
    v.section("llm", llm, "decoder LLM");
  }
};

}  // namespace phantom
