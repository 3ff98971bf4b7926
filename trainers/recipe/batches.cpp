#include "trainers/recipe/batches.h"

#include <optional>

#include "data/images/image.h"

namespace phantom::train {

data::Batch BatchMaker::operator()(const std::vector<size_t>& idx) const {
  std::vector<data::EncodedPreference> prefs;
  std::vector<data::EncodedConversation> convs;
  std::vector<at::Tensor> pixels;
  std::vector<int64_t> kept;  // dataset index of each sample that made it into the batch
  for (auto i : idx) {
    const auto& s = samples[i];
    try {
      std::vector<at::Tensor> tiles_of;
      std::vector<int64_t> counts;
      for (auto& path : s.images) {
        data::RgbImage img;
        try {
          img = data::load_image(path);
        } catch (const std::exception& e) {
          throw data::DataError(s.where, "unreadable image", e.what());
        }
        auto t = data::preprocess_image(img, tiles);
        counts.push_back(t.size(0));
        tiles_of.push_back(t);
      }
      at::Tensor px = tiles_of.empty() ? at::Tensor() : torch::cat(tiles_of, 0);
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
        size_t total = pref->prompt.size(), longest = 0;
        for (auto& a : pref->answers) total += a.size(), longest = std::max(longest, a.size());
        length = shared_prefix ? total : pref->prompt.size() + longest;
      } else {
        conv = data::chosen_as_conversation(enc.preference(s, counts));
        length = conv->ids.size();
      }
      if (static_cast<int64_t>(length) > cfg.data.max_length)
        throw data::DataError(s.where, "over-length sample",
                              std::to_string(length) + " tokens after image expansion > data.max_length " +
                                  std::to_string(cfg.data.max_length));
      if (pref) prefs.push_back(std::move(*pref));
      if (conv) convs.push_back(std::move(*conv));
      pixels.push_back(px);
      kept.push_back(static_cast<int64_t>(i));
    } catch (const data::DataError& e) {
      if (cfg.data.on_error == "fail") throw;
      std::lock_guard<std::mutex> lock(*mu);
      skipped->add(e.reason);
    }
  }
  if (kept.empty()) {
    if (empty_ok) return data::Batch{};
    throw std::runtime_error("every sample of a batch was skipped (see data.on_error)");
  }
  auto b = preference ? data::collate_preference(prefs, pixels, pad_id, shared_prefix) : data::collate_sft(convs, pixels, pad_id);
  b.sample_index = torch::tensor(kept, torch::kInt64);
  return b;
}

std::vector<int64_t> estimated_lengths(const std::vector<data::Sample>& samples, int64_t tokens_per_image) {
  std::vector<int64_t> out;
  for (auto& s : samples) {
    size_t chars = s.question.size() + s.chosen.size();
    for (auto& t : s.turns) chars += t.text.size();
    out.push_back(static_cast<int64_t>(chars / 4) + static_cast<int64_t>(s.images.size()) * tokens_per_image);
  }
  return out;
}

}  // namespace phantom::train
