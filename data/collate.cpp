#include "data/collate.h"

#include <algorithm>

namespace phantom::data {

namespace {

at::Tensor cat_pixels(const std::vector<SamplePixels>& pixels, const std::vector<size_t>& order) {
  std::vector<at::Tensor> parts;
  for (auto i : order)
    if (i < pixels.size() && pixels[i].defined() && pixels[i].size(0) > 0) parts.push_back(pixels[i]);
  if (parts.empty()) return at::Tensor();
  // Parts that already lie back to back in one storage (the batch maker tiles into one tensor and passes views):
  // the batch is their span, not a copy.
  bool adjacent = parts[0].is_contiguous();
  int64_t n = parts[0].size(0);
  for (size_t k = 1; adjacent && k < parts.size(); ++k) {
    adjacent = parts[k].is_contiguous() && parts[k].is_alias_of(parts[0]) && parts[k].sizes().slice(1) == parts[0].sizes().slice(1) &&
               parts[k].storage_offset() == parts[k - 1].storage_offset() + parts[k - 1].numel();
    n += parts[k].size(0);
  }
  if (!adjacent) return torch::cat(parts, 0);
  auto sizes = parts[0].sizes().vec();
  sizes[0] = n;
  return parts[0].as_strided(sizes, parts[0].strides(), parts[0].storage_offset());
}

struct TargetBuilder {
  std::vector<int64_t> row, pred, target, segment;
  void add(int64_t r, int64_t p, int64_t t, int64_t s) {
    row.push_back(r), pred.push_back(p), target.push_back(t), segment.push_back(s);
  }
  Targets build(int64_t segments) const {
    auto t = [](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kInt64); };
    return Targets{t(row), t(pred), t(target), t(segment), segments};
  }
};

}  // namespace

EncodedConversation chosen_as_conversation(const EncodedPreference& p) {
  EncodedConversation c;
  c.ids = p.prompt_of(0);
  c.ids.insert(c.ids.end(), p.answers[0].begin(), p.answers[0].end());
  c.labels.assign(p.prompt_of(0).size(), kIgnore);
  c.labels.insert(c.labels.end(), p.answers[0].begin(), p.answers[0].end());
  return c;
}

Batch collate_sft(const std::vector<EncodedConversation>& samples, const std::vector<SamplePixels>& pixels,
                  int32_t pad_id) {
  const int64_t B = static_cast<int64_t>(samples.size());
  int64_t L = 0;
  for (auto& s : samples) L = std::max<int64_t>(L, static_cast<int64_t>(s.ids.size()));
  Batch b;
  b.input_ids = torch::full({B, L}, pad_id, torch::kInt64);
  b.attention_mask = torch::zeros({B, L}, torch::kInt64);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto am = b.attention_mask.accessor<int64_t, 2>();
  TargetBuilder tb;
  for (int64_t r = 0; r < B; ++r) {
    const auto& s = samples[static_cast<size_t>(r)];
    for (size_t i = 0; i < s.ids.size(); ++i) {
      ids[r][static_cast<int64_t>(i)] = s.ids[i];
      am[r][static_cast<int64_t>(i)] = 1;
      if (i > 0 && s.labels[i] != kIgnore) tb.add(r, static_cast<int64_t>(i) - 1, s.labels[i], r);
    }
    b.num_tokens += static_cast<int64_t>(s.ids.size());
  }
  b.targets = tb.build(B);
  b.num_sft_tokens = b.targets.target.numel();
  b.num_slots = B * L;
  std::vector<size_t> order(samples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  b.pixel_values = cat_pixels(pixels, order);
  return b;
}

Batch collate_sft_packed(const std::vector<EncodedConversation>& samples, const std::vector<SamplePixels>& pixels,
                         int32_t pad_id, int64_t row_length) {
  // First fit, in sample order: each sample goes into the first row with room for it.
  std::vector<std::vector<size_t>> rows;
  std::vector<int64_t> used;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto n = static_cast<int64_t>(samples[i].ids.size());
    size_t r = 0;
    while (r < rows.size() && used[r] + n > row_length) ++r;
    if (r == rows.size()) rows.emplace_back(), used.push_back(0);
    rows[r].push_back(i), used[r] += n;
  }
  const auto B = static_cast<int64_t>(rows.size());
  const int64_t L = used.empty() ? 0 : *std::max_element(used.begin(), used.end());
  Batch b;
  b.input_ids = torch::full({B, L}, pad_id, torch::kInt64);
  b.attention_mask = torch::zeros({B, L}, torch::kInt64);
  b.positions = torch::zeros({B, L}, torch::kInt64);
  auto layout = std::make_shared<SegmentLayout>();
  layout->rows.resize(rows.size());
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto am = b.attention_mask.accessor<int64_t, 2>();
  auto pos = b.positions.accessor<int64_t, 2>();
  TargetBuilder tb;
  std::vector<size_t> order;  // samples in row-major order: the order of their image tiles in the batch
  for (int64_t r = 0; r < B; ++r) {
    int64_t t = 0;
    for (size_t i : rows[static_cast<size_t>(r)]) {
      const auto& s = samples[i];
      const auto n = static_cast<int64_t>(s.ids.size());
      layout->rows[static_cast<size_t>(r)].push_back(Segment{t, n, 0, 0});
      for (int64_t k = 0; k < n; ++k) {
        ids[r][t + k] = s.ids[static_cast<size_t>(k)], am[r][t + k] = 1, pos[r][t + k] = k;
        if (k > 0 && s.labels[static_cast<size_t>(k)] != kIgnore)
          tb.add(r, t + k - 1, s.labels[static_cast<size_t>(k)], static_cast<int64_t>(i));
      }
      t += n;
      b.num_tokens += n;
      order.push_back(i);
    }
  }
  b.segments = layout;
  b.targets = tb.build(static_cast<int64_t>(samples.size()));
  b.num_sft_tokens = b.targets.target.numel();
  b.num_slots = B * L;
  b.pixel_values = cat_pixels(pixels, order);
  return b;
}

Batch collate_preference(const std::vector<EncodedPreference>& samples, const std::vector<SamplePixels>& pixels,
                         int32_t pad_id, bool shared_prefix) {
  Batch b;
  b.preference = true;
  b.num_questions = static_cast<int64_t>(samples.size());
  std::vector<int64_t> seg_q, seg_a;
  for (size_t q = 0; q < samples.size(); ++q)
    for (size_t a = 0; a < samples[q].answers.size(); ++a) seg_q.push_back(static_cast<int64_t>(q)), seg_a.push_back(static_cast<int64_t>(a));
  b.seg_question = torch::tensor(seg_q, torch::kInt64);
  b.seg_answer = torch::tensor(seg_a, torch::kInt64);
  TargetBuilder tb;

  if (!shared_prefix) {
    // One row per (question, answer): the layout every other trainer uses.
    std::vector<EncodedConversation> rows;
    std::vector<size_t> order;
    for (size_t q = 0; q < samples.size(); ++q)
      for (size_t a = 0; a < samples[q].answers.size(); ++a) {
        EncodedConversation c;
        c.ids = samples[q].prompt_of(a);
        c.ids.insert(c.ids.end(), samples[q].answers[a].begin(), samples[q].answers[a].end());
        c.labels.assign(samples[q].prompt_of(a).size(), kIgnore);
        c.labels.insert(c.labels.end(), samples[q].answers[a].begin(), samples[q].answers[a].end());
        rows.push_back(std::move(c));
        order.push_back(q);
      }
    Batch s = collate_sft(rows, {}, pad_id);
    b.input_ids = s.input_ids;
    b.attention_mask = s.attention_mask;
    b.targets = s.targets;  // segment = row = (question, answer) in order: matches seg_question/seg_answer
    b.num_tokens = s.num_tokens;
    b.pixel_values = cat_pixels(pixels, order);
  } else {
    // One row per question, [prompt | answer 0 | answer 1 | ...]; a question whose answers have different prompt
    // ids (in-context tokenisation, EncodedPreference::shared) gets one [prompt a | answer a] row per answer.
    struct RowPlan {
      size_t q;
      std::vector<size_t> answers;
    };
    std::vector<RowPlan> plan;
    std::vector<size_t> order;  // the question of each row, for its pixels
    int64_t L = 0;
    for (size_t q = 0; q < samples.size(); ++q) {
      const auto& s = samples[q];
      if (s.shared()) {
        plan.push_back({q, {}});
        for (size_t a = 0; a < s.answers.size(); ++a) plan.back().answers.push_back(a);
        order.push_back(q);
      } else {
        for (size_t a = 0; a < s.answers.size(); ++a) plan.push_back({q, {a}}), order.push_back(q);
      }
      L = std::max(L, s.row_length(true));
    }
    const auto B = static_cast<int64_t>(plan.size());
    b.input_ids = torch::full({B, L}, pad_id, torch::kInt64);
    b.attention_mask = torch::zeros({B, L}, torch::kInt64);
    b.positions = torch::zeros({B, L}, torch::kInt64);
    auto layout = std::make_shared<SegmentLayout>();
    layout->rows.resize(static_cast<size_t>(B));
    auto ids = b.input_ids.accessor<int64_t, 2>();
    auto am = b.attention_mask.accessor<int64_t, 2>();
    auto pos = b.positions.accessor<int64_t, 2>();
    int64_t segment = 0;
    for (int64_t r = 0; r < B; ++r) {
      const auto& s = samples[plan[static_cast<size_t>(r)].q];
      const auto& prompt = s.prompt_of(plan[static_cast<size_t>(r)].answers.front());
      const int64_t P = static_cast<int64_t>(prompt.size());
      auto& row = layout->rows[static_cast<size_t>(r)];
      row.push_back(Segment{0, P, 0, 0});  // the prompt: causal over itself
      int64_t t = 0;
      for (int64_t i = 0; i < P; ++i, ++t) ids[r][t] = prompt[static_cast<size_t>(i)], am[r][t] = 1, pos[r][t] = i;
      for (size_t a : plan[static_cast<size_t>(r)].answers) {
        const auto& answer = s.answers[a];
        const int64_t start = t, n = static_cast<int64_t>(answer.size());
        row.push_back(Segment{start, n, 0, P});  // an answer: the whole prompt, then itself causally
        for (int64_t k = 0; k < n; ++k, ++t) {
          ids[r][t] = answer[static_cast<size_t>(k)], am[r][t] = 1, pos[r][t] = P + k;
          tb.add(r, k == 0 ? P - 1 : t - 1, answer[static_cast<size_t>(k)], segment);
        }
        ++segment;  // segments follow (question, answer) order: rows of one question are consecutive
      }
      b.num_tokens += t;
    }
    b.segments = layout;
    b.pixel_values = cat_pixels(pixels, order);
    b.targets = tb.build(segment);
  }
  b.targets.num_segments = static_cast<int64_t>(seg_q.size());
  b.num_slots = b.input_ids.numel();
  // Cross-entropy tokens: those of the chosen answers.
  auto chosen = b.seg_answer.index_select(0, b.targets.segment).eq(0);
  b.num_sft_tokens = chosen.sum().item<int64_t>();
  return b;
}

}  // namespace phantom::data
