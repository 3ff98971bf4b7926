// How the tokens of one batch row attend when the row holds more than one sequence, without an L x L mask
// (docs/training.md, "Packed rows and shared prefixes"). Plain data: the data pipeline writes it, the decoder's
// attention reads it (phantom/model/segment_attention.h).
//
//   packed SFT row       [ sample 0 | sample 1 | ... | padding ]     every segment without a prefix: causal
//                                                                     within itself, positions restart at 0
//   shared-prefix row    [ prompt | answer 0 | answer 1 | padding ]  the prompt without a prefix; each answer
//                                                                     with the prompt as its prefix: it sees the
//                                                                     whole prompt and itself causally
#pragma once

#include <cstdint>
#include <vector>

namespace phantom {

struct Segment {
  int64_t start = 0, length = 0;                // the segment's tokens in the row: [start, start + length)
  int64_t prefix_start = 0, prefix_length = 0;  // keys it sees before its own (0 = none)
};

// rows[b]: the segments of row b, back to back from position 0; the rest of the row is padding, which attends
// to nothing (its outputs are zeros and never used).
struct SegmentLayout {
  std::vector<std::vector<Segment>> rows;
};

}  // namespace phantom
