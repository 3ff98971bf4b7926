// The weights of a stage by role (phantom/model/frozen_storage.h): at its start the adapters are attached, the
// trainable tensors chosen (fp32 master weights, AdamW), and the frozen ones stored as the config asks
// (run.frozen_dtype, stage.base_int8); at its end the adapters are merged and everything is back in fp32, so the
// export and the next stage see the model they would have seen without any of it.
#pragma once

#include "phantom/model/frozen_storage.h"
#include "trainers/recipe/optim.h"
#include "trainers/recipe/run_config.h"

namespace phantom::recipe {

// run.frozen_dtype resolved against the compute dtype (auto: frozen matrices stored in the compute dtype).
c10::ScalarType frozen_storage_dtype(const std::string& frozen_dtype, c10::ScalarType compute);

// Adapters (lora.rank > 0), the trainable set (select_stage_trainable), then the frozen storage; logs what it saved.
// Idempotent: a stage prepared before (resume) is left as it is.
Trainable prepare_stage_weights(torch::nn::Module& model, const StageConfig& stage, c10::ScalarType frozen_dtype,
                                bool attach_adapters = true);

// Merges the adapters and undoes the frozen storage: every tensor in fp32 again. Returns the adapters merged.
int64_t finish_stage_weights(torch::nn::Module& model);

}  // namespace phantom::recipe
