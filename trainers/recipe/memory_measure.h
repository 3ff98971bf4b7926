// The measured side of the memory plan: one training step of a stage on the CPU at a config's shapes, its peak by
// the caching CPU allocator (phantom/model/cpu_allocator.h, which must be installed), and the plan made for exactly
// that step. `phantom plan --measure` and tests/test_memory_plan.cpp use it; docs/scale.md holds its numbers.
#pragma once

#include "trainers/recipe/memory_plan.h"

namespace phantom::recipe {

struct MeasuredStep {
  int64_t peak_bytes = 0;  // allocator's peak of the second step (the AdamW state exists by then)
  double ms = 0;           // that step's wall time
  int64_t rows = 0, row_length = 0, tiles = 0;
  PlanInputs inputs;       // the plan of this very step (CPU compute dtype, the collated row length)
  MemoryPlan plan;
};

// Random weights of `model` shapes, data.batch_size synthetic questions of data.max_length tokens holding
// data.max_tiles (+ thumbnail) random tiles, stage `s` prepared as the trainer prepares it (adapters, trainable
// set, frozen storage, checkpointing), two optimiser steps (forward, backward, clip, AdamW).
MeasuredStep measure_step(const RunConfig& cfg, const ModelConfig& model, size_t s);

}  // namespace phantom::recipe
