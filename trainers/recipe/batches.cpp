#include "trainers/recipe/batches.h"

#include <optional>

#include "data/images/tile_batch.h"
#include "phantom/util/log.h"

namespace phantom::recipe {

data::Batch BatchMaker::operator()(const std::vector<size_t>& idx) const {
  std::vector<data::EncodedPreference> prefs;
  std::vector<data::EncodedConversation> convs;
  std::vector<int64_t> sample_tiles;  // tiles of each kept sample
  std::vector<int64_t> kept;  // dataset index of each sample that made it into the batch
  std::string first_skip;     // the first skipped sample's file:line and reason, for an all-skipped batch
  // Images are decoded here, sample by sample, and tiled after the loop straight into the batch's pixel tensor.
  data::TileBatch images(tiles, image_cache.get());
  for (auto i : idx) {
    const size_t images_before = images.size();
    try {
      const data::Sample s = samples.at(i);  // a row of an indexed file is parsed and checked here
      std::vector<int64_t> counts;
      for (auto& path : s.images) {
        try {
          counts.push_back(images.add(path));
        } catch (const std::exception& e) {
          throw data::DataError(s.where, "unreadable image", e.what());
        }
      }
      // Encode first, check the length after image expansion, then keep the sample.
      std::optional<data::EncodedPreference> pref;
      std::optional<data::EncodedConversation> conv;
      size_t length = 0;
      if (!s.is_preference()) {
        if (preference) throw data::DataError(s.where, "not a preference sample", "this stage's loss needs chosen/rejected answers");
        conv = enc.conversation(s, counts);
        length = conv->ids.size();
      } else if (preference) {
        pref = enc.preference(s, counts);
        length = static_cast<size_t>(pref->row_length(shared_prefix));
      } else {
        conv = data::chosen_as_conversation(enc.preference(s, counts));
        length = conv->ids.size();
      }
      // The rule: a sample longer than data.max_length, or than the model's context (positions it was never
      // trained for), is over-length and follows data.on_error; nothing is truncated.
      if (static_cast<int64_t>(length) > cfg.data.max_length)
        throw data::DataError(s.where, "over-length sample",
                              std::to_string(length) + " tokens after image expansion > data.max_length " +
                                  std::to_string(cfg.data.max_length));
      if (context > 0 && static_cast<int64_t>(length) > context)
        throw data::DataError(s.where, "over-length sample",
                              std::to_string(length) + " tokens after image expansion > the model's context " +
                                  "(max_position_embeddings " + std::to_string(context) + ")");
      // The prompt ids the sample trains on, comparable with the "prompt ids of" lines of eval and generate.
      if (log::debug_enabled()) {
        const auto& prompt = pref ? pref->prompt_of(0) : conv->ids;
        size_t n = pref ? prompt.size() : 0;
        while (!pref && n < conv->labels.size() && conv->labels[n] == data::kIgnore) ++n;
        std::string list;
        for (size_t k = 0; k < n; ++k) list += std::to_string(prompt[k]) + " ";
        log::debug("training prompt ids of " + (s.id.empty() ? s.where : s.id) + " (" + std::to_string(n) + "): " + list);
      }
      if (pref) prefs.push_back(std::move(*pref));
      if (conv) convs.push_back(std::move(*conv));
      int64_t n = 0;
      for (auto c : counts) n += c;
      sample_tiles.push_back(n);
      kept.push_back(static_cast<int64_t>(i));
    } catch (const data::DataError& e) {
      images.truncate(images_before);
      if (cfg.data.on_error == "fail") throw;
      if (first_skip.empty()) first_skip = e.what();
      std::lock_guard<std::mutex> lock(*mu);
      skipped->add(e.reason, e.what());
    }
  }
  if (kept.empty()) {
    if (empty_ok) return data::Batch{};
    throw std::runtime_error("every sample of a batch was skipped under data.on_error: skip (" +
                             std::to_string(idx.size()) + " samples); the first: " + first_skip);
  }
  // One pooled tensor for the batch's tiles; each sample's pixels are a view of it, which the collate recognises
  // as already in place (no concatenation).
  std::vector<at::Tensor> pixels(kept.size());
  if (images.total_tiles() > 0) {
    const int64_t S = tiles.tile;
    at::Tensor all = pixel_pool->empty({images.total_tiles(), 3, S, S});
    images.write(all.data_ptr<float>());
    int64_t offset = 0;
    for (size_t k = 0; k < kept.size(); ++k) {
      if (sample_tiles[k] > 0) pixels[k] = all.narrow(0, offset, sample_tiles[k]);
      offset += sample_tiles[k];
    }
  }
  auto b = preference       ? data::collate_preference(prefs, pixels, pad_id, shared_prefix)
           : cfg.data.packing ? data::collate_sft_packed(convs, pixels, pad_id, cfg.data.max_length)
                              : data::collate_sft(convs, pixels, pad_id);
  b.sample_index = torch::tensor(kept, torch::kInt64);
  return b;
}

std::vector<int64_t> estimated_lengths(const data::SampleSet& samples, int64_t tokens_per_image) {
  std::vector<int64_t> out(samples.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = samples.estimated_length(i, tokens_per_image);
  return out;
}

}  // namespace phantom::recipe
