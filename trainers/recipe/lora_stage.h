// LoRA in the recipe: the adapters of a stage, what trains in it, and merging the adapters of a training
// checkpoint into an HF-format model (`phantom convert merge-lora`).
//
// Where adapters live: while a LoRA stage runs, they are ordinary tensors of the model, so every training
// checkpoint of that stage (`checkpoints/step-N/model.safetensors`) holds them next to the base weights under our
// names with PEFT's suffixes (`<linear>.lora_A.weight`, `<linear>.lora_B.weight`; int8 bases as
// `<linear>.int8.{weight,scale}`), and the rank/alpha/targets are in the checkpoint's config.yaml. At stage end they
// are merged (W += alpha/r * B @ A) before the HF export, so the export and the next stage see a plain model.
#pragma once

#include <string>

#include "phantom/model/lora.h"
#include "phantom/model/model.h"
#include "trainers/recipe/optim.h"
#include "trainers/recipe/run_config.h"

namespace phantom::recipe {

LoraOptions lora_options(const LoraConfig& c);

// Attaches the stage's adapters when stage.lora.rank > 0 (logs how many Linears got one); no-op otherwise.
void attach_stage_lora(torch::nn::Module& model, const StageConfig& stage);

// The stage's trainable tensors: parameters matching stage.trainable, plus every adapter when lora.rank > 0. The
// weight and bias of an adapted Linear stay frozen even when a trainable pattern names them (logged).
Trainable select_stage_trainable(torch::nn::Module& model, const StageConfig& stage);

struct MergeOptions {
  std::string checkpoint;  // a training checkpoint directory (checkpoints/step-N)
  std::string out;         // the HF-format directory to write
  std::string base;        // HF checkpoint whose config.json gives the architecture (default: model.path of the run)
  std::string tokenizer;   // tokenizer file to copy and read the image token from (default: data.tokenizer)
  std::string adapter_out; // also write the adapters alone in PEFT's format here (empty: no)
};
struct MergeResult {
  int64_t merged = 0;     // adapters merged
  std::string stage;      // the stage the checkpoint was taken in
};
// The adapters of `model` in PEFT's format: DIR/adapter_model.safetensors with HF module names
// (`base_model.model.<hf module>.lora_{A,B}.weight`) and DIR/adapter_config.json. A fused adapter is written per HF
// part: B's rows split (Qwen2 q/k/v, gate/up) or re-interleaved (InternLM2 wqkv) exactly as the weight's, A repeated,
// so W_hf + alpha/r * B_hf @ A_hf is the merged HF weight. Tensors the stage trains fully (projector, Phantom) are
// not adapters: they are in the checkpoint and the merged model only.
void write_peft_adapter(PhantomModelImpl& model, const LoraConfig& lora, const std::string& base_model, const std::string& dir);

// Builds the run's model, loads the checkpoint (adapters included) strictly, merges, writes config.json +
// model.safetensors + the tokenizer files. A checkpoint without adapters is exported as it is.
MergeResult merge_lora_checkpoint(const MergeOptions& o);

}  // namespace phantom::recipe
