// Attention over a SegmentLayout (phantom/util/segment_layout.h): one SDPA call per segment, never an L x L mask.
// A segment without a prefix is plain causal attention over itself (is_causal: the flash kernels apply); a
// segment with a prefix (an answer after its shared prompt) attends over [prefix K/V | its own K/V] with a small
// length x (prefix + length) mask. Equal to the dense-mask layout (tests/test_segments.cpp).
#pragma once

#include <torch/torch.h>

#include "phantom/util/segment_layout.h"

namespace phantom {

// q (B, H, L, D), k/v (B, Hk, L, D) -> (B, H, L, D); padding positions give zeros.
at::Tensor segment_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const SegmentLayout& layout, double scale);

// The Phantom sos of every segment's sequence: a segment without a prefix starts a sequence (its first token is
// the sos); one with a prefix belongs to its prefix's sequence. -> {sos (B, S) positions, slot (B, L) index
// into S for every token}, S = the most sequences in a row (unused slots point at position 0).
std::pair<at::Tensor, at::Tensor> segment_sos(const SegmentLayout& layout, int64_t L, const c10::Device& device);

// RoPE positions restarting per sequence: a segment without a prefix counts from 0, one with a prefix continues
// after it (padding: 0). (B, L) int64.
at::Tensor segment_positions(const SegmentLayout& layout, int64_t L, const c10::Device& device);

// Throws (naming the row and segment) unless the segments of every row are back to back from 0 within L and
// every prefix lies before its segment.
void check_layout(const SegmentLayout& layout, int64_t B, int64_t L);

}  // namespace phantom
