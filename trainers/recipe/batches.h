// Samples to batches, the one path the trainer, validation and `phantom data bench` share: images decoded and
// tiled, text encoded with the chat template, lengths checked after image expansion, bad samples handled by
// data.on_error, then collated (SFT or a preference layout).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <vector>

#include "data/annotations.h"
#include "data/chat_template.h"
#include "data/collate.h"
#include "data/sample_set.h"
#include "data/images/image.h"
#include "data/images/tile_batch.h"
#include "data/tensor_pool.h"
#include "trainers/recipe/run_config.h"

namespace phantom::recipe {

// Everything a batch needs from samples: images tiled, text encoded, lengths checked, bad samples per policy.
struct BatchMaker {
  const RunConfig& cfg;
  const data::SampleSet& samples;  // parsed a row at a time, in the worker threads
  const data::SampleEncoder& enc;
  data::TileOptions tiles;
  int32_t pad_id;
  bool preference;  // preference layout (PO & co) or SFT on chosen answers / conversations
  bool shared_prefix;
  std::mutex* mu;
  data::SkipCounts* skipped;
  bool empty_ok = false;  // a batch whose samples were all skipped comes back empty instead of failing
  int64_t context = 0;    // the model's max_position_embeddings: a longer sample is over-length whatever
                          // data.max_length says (0: unknown, data.max_length alone)
  // Shared by copies of this maker (and its loader threads): the pixel buffers reused across batches (the
  // batches in flight: prefetch + the one in use + 1), and the tiled-image cache when data.image_cache_mb > 0.
  std::shared_ptr<data::TensorPool> pixel_pool = std::make_shared<data::TensorPool>(static_cast<size_t>(cfg.data.prefetch) + 2);
  std::shared_ptr<data::ImageCache> image_cache =
      cfg.data.image_cache_mb > 0 ? std::make_shared<data::ImageCache>(static_cast<size_t>(cfg.data.image_cache_mb) << 20) : nullptr;

  // Builds the batch of samples `idx` (Batch::sample_index: the dataset index of each kept sample); thread-safe (the loader calls it from its worker threads).
  data::Batch operator()(const std::vector<size_t>& idx) const;
};

// Rough length for length grouping (exact lengths are only known after tiling and tokenising):
// SampleSet::estimated_length of every sample.
std::vector<int64_t> estimated_lengths(const data::SampleSet& samples, int64_t tokens_per_image);

}  // namespace phantom::recipe
