// Loading and saving models as Hugging Face checkpoint directories (config.json + safetensors).
//
//   Phantom / InternVL checkpoint: vision_model.*, vision_proj.*, language_model.{model,lm_head}.* + llm_config
//   bare LLM checkpoint (Qwen2, InternLM2, Phi-3): model.*, lm_head.*
//
// A checkpoint without Phantom tensors gets them created (PyTorch's default nn.Linear init, as the official
// modules) and listed in the report; `strict` makes that an error.
#pragma once

#include <string>

#include "phantom/model/model.h"
#include "phantom/io/weights.h"

namespace phantom {

// Every tensor of a checkpoint (a .safetensors file, a directory with model.safetensors, or a sharded
// model.safetensors.index.json), by its stored name.
StateDict read_checkpoint_tensors(const std::string& path);
// One .safetensors file (atomic write).
void write_checkpoint_tensors(const std::string& path, const StateDict& tensors);
// DIR/model.safetensors, or HF-named shards + model.safetensors.index.json when max_shard_bytes > 0 and exceeded.
void write_checkpoint_shards(const std::string& dir, const StateDict& tensors, int64_t max_shard_bytes);

// A bare LLM directory into a decoder. `mode`/`eta` choose the Phantom variant built around it.
DecoderLM load_llm(const std::string& dir, PhantomMode mode, double eta, bool strict, LoadReport* report = nullptr);

// A Phantom/InternVL directory, or a bare LLM directory (the vision tower then comes from `cfg.vision` and is
// initialised from scratch, and listed as created). `cfg` supplies the run-time switches (phantom, eta, strict).
PhantomModel load_phantom(const std::string& dir, ModelConfig cfg, LoadReport* report = nullptr);

// Writes config.json + model.safetensors (sharded above `max_shard_bytes` if > 0) in the HF layout of the family.
void save_llm(DecoderLMImpl& lm, const std::string& dir, int64_t max_shard_bytes = 0);
void save_phantom(PhantomModelImpl& model, const std::string& dir, int64_t max_shard_bytes = 0);

}  // namespace phantom
