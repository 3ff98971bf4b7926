// The memory of one training stage on one rank, from the model's dimensions and the run config alone (no
// checkpoint files): weights by role and dtype, gradients, AdamW state after ZeRO sharding, activations at the
// config's max_length / max_tiles / micro-batch, the LM head's chunk, gradient buckets, against a device's memory.
// `phantom plan` prints it (trainers/cli/cmd_plan.cpp); docs/scale.md holds the measured calibration.
//
// Parameters are listed tensor by tensor with the module's own names (model_tensors), so the stage's trainable
// regexes, LoRA targets and int8 rule select exactly what the trainer would; tests/test_memory_plan.cpp checks the
// list against PhantomModel's named_parameters.
//
// Activations are a count of the tensors autograd keeps per token, per decoder layer and per ViT block (written out
// in memory_plan.cpp), which depends on what trains: a frozen Linear keeps nothing of its input, a trained or adapted
// one keeps it; nothing below the lowest trainable tensor keeps anything. Checkpointed layers keep only their input.
// On top of that, one transient at a time: the head's chunk of logits in the forward, or one block's backward (its
// recomputed activations when checkpointed, its widest gradient, a dequantised int8 weight).
#pragma once

#include <string>
#include <vector>

#include "phantom/model/model_config.h"
#include "trainers/recipe/run_config.h"

namespace phantom::recipe {

struct PlannedTensor {
  std::string name;   // as PhantomModel names it
  std::vector<int64_t> shape;
  bool linear = false;  // a Linear's weight (int8 and LoRA candidates)
  int64_t numel() const;
};

// Every parameter of PhantomModel(cfg), in registration order.
std::vector<PlannedTensor> model_tensors(const ModelConfig& cfg);

// What the planner needs beyond the model: one stage of a run.
struct PlanInputs {
  ModelConfig model;
  StageConfig stage;
  bool bf16 = true;              // compute dtype bf16 (autocast) or fp32
  int frozen_bytes = 2;          // storage of frozen matrices: 2 (bf16) or 4 (fp32)
  bool decoder_checkpointing = false, vision_checkpointing = false;
  int64_t max_length = 2048;     // decoder tokens per row (images expanded)
  int64_t max_tiles = 6;         // tiles per question (+ a thumbnail when > 1)
  int64_t micro_batch = 1;       // questions per micro-batch per rank
  bool preference = false;       // po/dpo... rows: prompt + every answer in one row (shared prefix)
  int64_t head_rows = 0;         // supervised rows of a micro-batch (the LM head's); 0 = every decoder token
  int ranks = 1;
  int zero_stage = 0;
  double bucket_mb = 25;
};

// Bytes, by what holds them.
struct MemoryPlan {
  // weights
  int64_t frozen_fp32 = 0, frozen_half = 0, frozen_int8 = 0;  // int8 includes the per-row fp32 scales
  int64_t trainable_fp32 = 0, lora_fp32 = 0;                 // masters of trained tensors / of the adapters
  int64_t n_params = 0, n_trainable = 0, n_lora = 0;          // elements
  // training state
  int64_t gradients = 0, adamw = 0, autocast_copies = 0, buckets = 0;
  // activations of one micro-batch (as planned: with the config's checkpointing) and both alternatives
  int64_t vision_act = 0, decoder_act = 0;   // kept from the forward until backward reaches them
  int64_t head_chunk = 0, backward_block = 0;  // the two transients, never held at once (the larger counts)
  // The most held at one moment beyond weights and AdamW state: the head's forward, the lowest decoder layer's or
  // the top ViT block's backward (activations + the gradients that exist by then), or the optimiser step (every gradient).
  int64_t step_peak = 0;
  int64_t decoder_act_ckpt = 0, decoder_act_full = 0, vision_act_ckpt = 0, vision_act_full = 0;
  int64_t tiles = 0, vision_tokens = 0, decoder_tokens = 0;  // of one micro-batch
  int64_t weights() const { return frozen_fp32 + frozen_half + frozen_int8 + trainable_fp32 + lora_fp32; }
  int64_t state() const { return gradients + adamw + autocast_copies + buckets; }
  int64_t transient() const { return head_chunk > backward_block ? head_chunk : backward_block; }
  int64_t activations() const { return vision_act + decoder_act + transient(); }
  int64_t total() const { return weights() + adamw + autocast_copies + buckets + step_peak; }
};

MemoryPlan plan_memory(const PlanInputs& in);

// The largest micro-batch (<= limit) whose total fits `device_bytes`; 0 when not even one does.
int64_t largest_micro_batch(PlanInputs in, int64_t device_bytes, int64_t limit = 64);

// When micro-batch 1 does not fit: each single change (checkpointing, int8 base, ZeRO-2, shorter rows, fewer tiles)
// that makes it fit, as "what -> total"; empty when none does alone.
std::vector<std::string> changes_that_fit(const PlanInputs& in, int64_t device_bytes);

// The inputs of stage `s` of a run config as the trainer would run it on a CUDA device (precision auto = bf16).
PlanInputs plan_inputs(const RunConfig& cfg, size_t s, int ranks);

// "1.23 GiB"
std::string gib(int64_t bytes);

}  // namespace phantom::recipe
