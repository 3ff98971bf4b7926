// Hugging Face config.json <-> ModelConfig. Reads Phantom/InternVL checkpoints (`llm_config` + `vision_config`)
// and bare LLM checkpoints (Qwen2, InternLM2, Phi-3); writes a Phantom config the Python reference can load.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "phantom/model/model_config.h"

namespace phantom {

// What kind of checkpoint a directory holds.
struct HfCheckpointInfo {
  // internvl_chat: Phantom / InternVL2 remote code (vision_model.*, vision_proj.* or mlp1.*, language_model.*)
  // internvl_hf:   transformers' InternVLForConditionalGeneration (vision_tower.*, multi_modal_projector.*, ...)
  // llm:           a bare Qwen2 / InternLM2 / Phi-3 checkpoint
  std::string layout = "llm";
  bool has_vision = false;   // a vision-language checkpoint
  std::string llm_prefix;    // "language_model." or "" for a bare LLM
};

// Reads DIR/config.json into `cfg` (architecture fields only; run-time switches such as cfg.phantom are kept).
// Errors name the file and the key.
HfCheckpointInfo read_hf_config(const std::string& dir, ModelConfig& cfg);

// An InternVisionConfig (remote code) or InternVLVisionConfig (transformers) object; omitted keys take that
// class's defaults.
void read_vision_config(const nlohmann::json& v, const std::string& where, VisionConfig& c);
// DIR/config.json of an InternViT checkpoint (or the vision_config of a VLM there).
void read_vision_dir_config(const std::string& dir, VisionConfig& v);

// LLM part only, from a parsed LLM config object (`llm_config` of a Phantom config or a bare LLM config).
LlmConfig llm_config_from_json(const nlohmann::json& j, const std::string& where);

// A Phantom config.json: {llm_config: <HF config of the family>, vision_config: {...}, downsample_ratio, ...}.
nlohmann::json phantom_config_json(const ModelConfig& cfg);
// A bare HF config of the LLM (what Qwen2ForCausalLM / Phi3ForCausalLM / InternLM2 read).
nlohmann::json llm_config_json(const LlmConfig& cfg);

}  // namespace phantom
