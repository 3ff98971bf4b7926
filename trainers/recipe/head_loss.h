// The LM head and the log-softmax over the supervised rows, in row chunks: the T x V logits (T supervised rows,
// V up to 152k for Qwen2) and their gradient never exist at once, only one chunk of them in a reused buffer.
// This is what Liger's fused linear-cross-entropy and torchtune's chunked loss do in PyTorch.
//
//   logp_t = (h_t W^T)[y_t] - logsumexp_v (h_t W^T)[v]          for every supervised row t
//
// Two autograd functions, chosen by what the loss knows at forward time:
//   head_cross_entropy  loss = -scale * sum_t logp_t (SFT, and PO's chosen-answer term is not separate: see
//                       below). Its gradient is known in the forward (d/dlogits = scale * (softmax - onehot)), so
//                       the forward computes grad(h) and grad(W) chunk by chunk: three matmuls, as eager.
//   head_logps          logp_t for any loss of them (PO, DPO, ...). The gradient of each row is only known in
//                       backward. A frozen head (PO step 1) keeps d logp_t / d h_t = W[y_t] - softmax_t W (T x C)
//                       from the forward; a trainable head recomputes each chunk's logits in backward (four
//                       matmuls instead of three, the price of never holding T x V).
// Matmuls run in the autocast dtype when autocast is on (bf16), the softmax and its sums in fp32, as the
// unfused path (`logits.float().log_softmax`) does. Equal to it within float rounding (tests/test_head_loss.cpp).
#pragma once

#include <torch/torch.h>

namespace phantom::recipe {

// Rows per chunk so that one chunk of fp32 logits is about `bytes` (at least 16 rows).
int64_t head_chunk_rows(int64_t vocab, int64_t bytes = 64ll << 20);

// rows (T, C), weight (V, C), target (T,) int64 -> logp (T,) fp32; differentiable in rows and weight.
at::Tensor head_logps(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& target,
                      int64_t chunk_rows = 0);

// -> {loss = -scale * sum_t logp_t (differentiable), logp (T,) fp32 (detached, for metrics)}.
std::pair<at::Tensor, at::Tensor> head_cross_entropy(const at::Tensor& rows, const at::Tensor& weight,
                                                     const at::Tensor& target, double scale,
                                                     int64_t chunk_rows = 0);

}  // namespace phantom::recipe
