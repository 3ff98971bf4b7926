// Model FLOPs of a training step, counted so that other frameworks' MFU can sit beside ours:
//
//   - what runs: the ViT on every tile, the projector on its tokens, the decoder on every real token, the LM head
//     only on the rows the chunked head computes (the supervised tokens, every answer of a preference row);
//   - per matmul of a weight W (P parameters) over n rows: forward 2Pn; the input gradient 2Pn only when a tensor
//     below it trains (gradients must flow through it); the weight gradient 2Pn only when W trains. A frozen
//     Linear with trainable tensors below it costs 4Pn, one with nothing trainable below 2Pn, a trainable one 6Pn;
//     LoRA adapters are charged as the Linears they are (A's input gradient only when something below trains);
//   - attention score matmuls (QK^T and PV, no weights) at the full row length, as PaLM's and torchtitan's
//     12·L·H·D·T convention (forward 4·H·Dk·T per token, Dk = 2·D with the Phantom dimension; x3 when gradients
//     flow through, else x1); the ViT's at its 1 + g² tokens per tile;
//   - recomputation (activation checkpointing) is not counted: it is work the model did not ask for, as Megatron
//     and torchtitan report it.
// Norms, activations, softmax, biases and embedding lookups are left out (< 1 % at the paper's widths).
#pragma once

#include <string>

#include "phantom/model/model.h"

namespace phantom::recipe {

// What one optimiser step ran on one rank, summed over its micro-batches.
struct StepWork {
  int64_t tokens = 0;      // decoder tokens, text and visual, padding excluded
  int64_t row_length = 0;  // the attention length charged per token (the longest row of the step)
  int64_t head_rows = 0;   // rows the LM head computed
  int64_t tiles = 0;       // image tiles through the ViT
};

struct StepFlops {
  double vision = 0, projector = 0, decoder = 0, attention = 0, head = 0;  // attention: decoder + ViT scores
  double total() const { return vision + projector + decoder + attention + head; }
};

// The FLOPs of `w` on `model` as it stands (requires_grad of its tensors says what trains).
StepFlops step_flops(PhantomModelImpl& model, const StepWork& w);

// Dense bf16 tensor-core peak (TFLOP/s) of a CUDA device by its name (H100, H200, A100, A6000, RTX 3090 ...), 0
// when the name is not in the table (docs/training.md lists the datasheet figures).
double bf16_peak_tflops(const std::string& device_name);

// The peak one rank's MFU is measured against: log.peak_tflops when set, else the device's from the table; 0 (no
// MFU reported) on CPU or an unknown device.
double peak_tflops_for(const c10::Device& device, double configured);

// The CUDA device's name ("NVIDIA H100 80GB HBM3"); "cpu" on CPU.
std::string device_name(const c10::Device& device);

}  // namespace phantom::recipe
