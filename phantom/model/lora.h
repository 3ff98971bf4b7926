// The Linear layer every part of the model uses (ViT, projector, decoder, Phantom tensors), and what training puts
// on top of it: LoRA adapters and int8 weight-only storage of a frozen weight.
//
//   y = x W^T + b                                        plain (HF names: <name>.weight, <name>.bias)
//   y = x W^T + b + (alpha/r) * B(A(dropout(x)))         with an adapter: <name>.lora_A.weight (r x in, PyTorch's
//                                                          default Linear init, as PEFT), <name>.lora_B.weight
//                                                          (out x r, zeros: a fresh adapter changes nothing)
//   W = q * scale[:, None]                                int8 base: <name>.int8.weight (int8, out x in) and
//                                                          <name>.int8.scale (fp32, out), symmetric per output row;
//                                                          the float weight is dropped, dequantised on the fly
//
// The base weight keeps its HF name, so checkpoints load and export unchanged. Fused matrices (the decoder's
// qkv_proj and gate_up_proj, the ViT's qkv) get one adapter on the fused matrix: A is shared by q, k and v
// (gate and up), B has a row block per part. That is three (two) adapters of rank r whose A matrices are tied;
// its merge W += scale * B @ A splits into exactly the per-part updates, so the HF export is exact.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace phantom {

// int8 storage of a frozen weight (a child module, so it can be removed again when merged).
struct Int8WeightImpl : torch::nn::Module {
  explicit Int8WeightImpl(const at::Tensor& weight);  // quantises (per output row, symmetric, round to nearest)
  at::Tensor dequantize(c10::ScalarType dtype) const;
  at::Tensor weight, scale;       // int8 (out, in), fp32 (out)
  c10::ScalarType dtype;          // the float dtype of the weight (follows model->to(dtype)), used by merge
  // int8 values and fp32 scales survive model->to(dtype); only the device changes.
  using torch::nn::Module::to;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
};
TORCH_MODULE(Int8Weight);

struct LinearImpl : torch::nn::Module {
  // Same parameters, names and initialisation (same draws from the global generator) as torch::nn::Linear.
  LinearImpl(int64_t in, int64_t out, bool bias = true);
  at::Tensor forward(const at::Tensor& x);

  // Adds a LoRA adapter on the device/dtype of the weight. Throws if one is already attached.
  void add_lora(int64_t rank, double alpha, double dropout);
  // Replaces the float weight by its int8 form (the weight must not train: only adapters learn on top of it).
  void quantize_int8();
  // W (dequantised if int8) += scale * B @ A in fp32, then the adapter and the int8 storage are removed: a plain
  // Linear again, with `weight` a parameter in the original dtype.
  void merge_lora();
  bool has_lora() const { return static_cast<bool>(lora_A); }
  bool is_int8() const { return static_cast<bool>(int8); }
  // The weight the forward uses, without the adapter (dequantised if int8).
  at::Tensor effective_weight() const;

  int64_t in_features, out_features;
  at::Tensor weight, bias;  // weight undefined while int8
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  Int8Weight int8{nullptr};
  double lora_scale = 0, lora_dropout = 0;
};
TORCH_MODULE(Linear);

struct LoraOptions {
  int64_t rank = 0;
  double alpha = 16;
  double dropout = 0;
  std::vector<std::string> targets;  // regexes (std::regex search) of Linear module names
  bool base_int8 = false;            // store the adapted Linears' frozen weights as int8
};

// Every Linear of `model` by name (e.g. language_model.model.layers.0.self_attn.qkv_proj).
std::vector<std::pair<std::string, LinearImpl*>> named_linears(torch::nn::Module& model);
// Attaches adapters to every Linear whose name matches a target; returns their names. A target that matches no
// Linear is an error naming it (with a few Linear names as examples).
std::vector<std::string> attach_lora(torch::nn::Module& model, const LoraOptions& opt);
// Merges every adapter into its base weight (see LinearImpl::merge_lora); returns how many were merged.
int64_t merge_lora(torch::nn::Module& model);
// Names of the Linears that currently carry an adapter.
std::vector<std::string> lora_linears(torch::nn::Module& model);

}  // namespace phantom
