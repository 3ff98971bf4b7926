// Weights by role: while a stage trains, the tensors it does not train need no fp32 master copy. They are stored
// in the compute dtype (bf16) or, for frozen Linear weights, as int8 with per-row scales (lora.h's Int8Weight);
// trainable tensors keep their fp32 master weights. Before the model is exported or checkpointed at a stage's end,
// everything goes back to the master dtype, so the exported model holds what it held before (names and dtypes).
//
// What is stored down, and why only that:
//   - frozen Linear weights and the token embedding (the tied head with it): > 99 % of a model's bytes.
//   - everything else stays in the master dtype: norm weights, biases, layer scales, gates, the ViT's patch,
//     class and position embeddings (< 0.5 % of InternViT-300M). The ops that read them (norms, residual adds,
//     the patch convolution, whose output dtype sets the ViT's) stay exactly as they were.
//   - int8 takes only Linear weights, never the LM head (QLoRA's rule as well: the head's logits feed the loss).
//
// Mixed storage and the forward: under autocast a bf16 weight is what the matmul would have cast to anyway, so the
// result is the same as with fp32 storage. Without autocast (fp32 compute on CPU with bf16 storage asked for) a
// stored-down weight is cast to the input's dtype in each forward (weight_for_input), costing one transient copy.
#pragma once

#include <torch/torch.h>

#include <string>

namespace phantom {

struct FrozenStorage {
  c10::ScalarType dtype = c10::kFloat;  // storage of frozen matrices (kFloat: left as they are)
  bool int8 = false;                    // frozen Linear weights (not the LM head) as int8 + per-row fp32 scales
};

struct FrozenStorageReport {
  int64_t tensors_cast = 0, linears_int8 = 0;
  int64_t bytes_before = 0, bytes_after = 0;  // of every parameter and buffer of the model
  std::string summary() const;
};

// Bytes of every distinct parameter and buffer of `m`.
int64_t module_bytes(torch::nn::Module& m);

// Stores the frozen tensors of `model` (requires_grad false, decided by the caller beforehand) as `s` asks.
// Trainable tensors and LoRA adapters are left alone.
FrozenStorageReport store_frozen(torch::nn::Module& model, const FrozenStorage& s);

// Undoes store_frozen: int8 Linears without an adapter are dequantised into a `master` weight again (those with
// an adapter are merge_lora's), and every floating tensor not in `master` is cast back. Returns tensors restored.
int64_t restore_master(torch::nn::Module& model, c10::ScalarType master = c10::kFloat);

// `w` in the dtype a matmul with `x` should read it: as it is when the dtypes match or autocast is on for x's
// device (autocast casts both), else cast to x's dtype (a bf16-stored frozen weight in an fp32 forward).
at::Tensor weight_for_input(const at::Tensor& w, const at::Tensor& x);

}  // namespace phantom
