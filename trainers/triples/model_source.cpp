#include "trainers/triples/model_source.h"

#include <memory>
#include <stdexcept>

#include "trainers/eval/answer.h"

namespace phantom::triples {

ModelSampler model_sampler(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                           const data::TileOptions& tiles, GenerationConfig gc, int64_t batch_rows) {
  if (!gc.do_sample) throw std::runtime_error("the model source samples: its generation config needs do_sample");
  auto batch_index = std::make_shared<uint64_t>(0);
  return [&model, &tok, &enc, tiles, gc, batch_rows, batch_index](const std::vector<TripleQuestion>& questions, int64_t k) {
    // Rows: every question k times, its images decoded once.
    std::vector<eval::Question> rows;
    for (const auto& q : questions) {
      eval::Question e;
      e.prompt = q.question;
      for (const auto& p : q.sample->images) e.images.push_back(data::load_image(p));
      for (int64_t j = 0; j < k; ++j) rows.push_back(e);
    }
    std::vector<std::string> texts;
    for (size_t b0 = 0; b0 < rows.size(); b0 += static_cast<size_t>(batch_rows)) {
      const std::vector<eval::Question> batch(rows.begin() + static_cast<std::ptrdiff_t>(b0),
                                              rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), b0 + static_cast<size_t>(batch_rows))));
      GenerationConfig g = gc;
      g.seed = gc.seed + (*batch_index)++;
      for (auto& a : eval::answer_batch(model, tok, enc, tiles, batch, g)) texts.push_back(std::move(a.text));
    }
    std::vector<std::vector<std::string>> out(questions.size());
    for (size_t i = 0; i < questions.size(); ++i)
      out[i].assign(texts.begin() + static_cast<std::ptrdiff_t>(i * static_cast<size_t>(k)),
                    texts.begin() + static_cast<std::ptrdiff_t>((i + 1) * static_cast<size_t>(k)));
    return out;
  };
}

}  // namespace phantom::triples
