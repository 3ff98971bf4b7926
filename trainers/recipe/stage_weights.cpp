#include "trainers/recipe/stage_weights.h"

#include "phantom/model/lora.h"
#include "phantom/util/logf.h"
#include "trainers/recipe/lora_stage.h"

namespace phantom::recipe {

c10::ScalarType frozen_storage_dtype(const std::string& frozen_dtype, c10::ScalarType compute) {
  if (frozen_dtype == "fp32") return c10::kFloat;
  if (frozen_dtype == "bf16") return c10::kBFloat16;
  return compute;  // auto
}

Trainable prepare_stage_weights(torch::nn::Module& model, const StageConfig& stage, c10::ScalarType frozen_dtype,
                                bool attach_adapters) {
  if (attach_adapters) attach_stage_lora(model, stage);
  Trainable t = select_stage_trainable(model, stage);
  FrozenStorage fs;
  fs.dtype = frozen_dtype;
  fs.int8 = stage.base_int8;
  const auto rep = store_frozen(model, fs);
  if (rep.tensors_cast || rep.linears_int8)
    log::info("stage {}: frozen weights stored as {}{}: {}", stage.name, c10::toString(frozen_dtype),
              stage.base_int8 ? " (Linears int8)" : "", rep.summary());
  return t;
}

int64_t finish_stage_weights(torch::nn::Module& model) {
  const int64_t merged = merge_lora(model);  // also dequantises every int8 Linear into its float weight
  restore_master(model, c10::kFloat);
  return merged;
}

}  // namespace phantom::recipe
