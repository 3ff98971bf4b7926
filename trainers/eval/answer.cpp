#include "trainers/eval/answer.h"

#include "phantom/util/log.h"
#include "phantom/util/stop.h"

namespace phantom::eval {

std::vector<int64_t> stop_token_ids(const PhantomModelImpl& model, const data::Tokenizer& tok,
                                    const data::SampleEncoder& enc) {
  if (!model.cfg.llm.eos_token_ids.empty()) return model.cfg.llm.eos_token_ids;
  if (auto e = tok.token_to_id(enc.chat_template().assistant_end)) return {*e};
  return {};
}

std::vector<Answer> answer_batch(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                                 const data::TileOptions& tiles, const std::vector<Question>& batch,
                                 const GenerationConfig& gc_in) {
  torch::NoGradGuard ng;
  model.eval();
  const auto dev = model.language_model->body->parameters().front().device();
  GenerationConfig gc = gc_in;
  if (gc.eos_token_ids.empty()) gc.eos_token_ids = stop_token_ids(model, tok, enc);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<at::Tensor> pixels;
  size_t L = 0;
  for (const auto& q : batch) {
    std::vector<int64_t> counts;
    for (auto& img : q.images) {
      auto t = data::preprocess_image(img, tiles);
      counts.push_back(t.size(0));
      pixels.push_back(t);
    }
    prompts.push_back(enc.prompt(q.prompt, counts));
    L = std::max(L, prompts.back().size());
    std::string list;  // the same debug line from the trainer's benchmark, `eval` and `generate --input`
    for (auto id : prompts.back()) list += std::to_string(id) + " ";
    log::debug("prompt ids of " + q.id + " (" + std::to_string(prompts.back().size()) + "): " + list);
  }
  const auto B = static_cast<int64_t>(prompts.size());
  auto ids = torch::zeros({B, static_cast<int64_t>(L)}, torch::kInt64);
  auto mask = torch::zeros({B, static_cast<int64_t>(L)}, torch::kInt64);
  for (int64_t r = 0; r < B; ++r) {
    const auto& p = prompts[static_cast<size_t>(r)];
    const int64_t off = static_cast<int64_t>(L - p.size());  // left padding
    for (size_t k = 0; k < p.size(); ++k) ids[r][off + static_cast<int64_t>(k)] = p[k], mask[r][off + static_cast<int64_t>(k)] = 1;
  }
  at::Tensor px = pixels.empty() ? at::Tensor() : torch::cat(pixels, 0).to(dev);
  auto embeds = model.embed_inputs(ids.to(dev), px);
  auto res = generate(*model.language_model, embeds, mask.to(dev), gc);
  std::vector<Answer> answers;
  for (int64_t r = 0; r < B; ++r) {
    // A model's embedding table may be larger than its tokenizer (rows padded to a round size, or a tokenizer
    // smaller than the config's vocab_size); ids past the tokenizer are no text, and are dropped as HF's decode
    // drops unknown ids, instead of failing the whole benchmark.
    std::vector<int32_t> known;
    for (auto id : res.tokens[static_cast<size_t>(r)])
      if (id >= 0 && id < tok.vocab_size()) known.push_back(static_cast<int32_t>(id));
    answers.push_back({batch[static_cast<size_t>(r)].id, tok.decode(known, /*skip_special=*/true)});
  }
  return answers;
}

std::vector<Answer> answer_questions(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                                     const data::TileOptions& tiles, const std::vector<Question>& questions,
                                     GenerationConfig gc, int64_t batch_size,
                                     const std::function<void(const Answer&)>& on_answer) {
  std::vector<Answer> answers;
  log::Progress progress("answering", static_cast<int64_t>(questions.size()));
  for (size_t b0 = 0; b0 < questions.size(); b0 += static_cast<size_t>(batch_size)) {
    const size_t b1 = std::min(questions.size(), b0 + static_cast<size_t>(batch_size));
    const std::vector<Question> batch(questions.begin() + static_cast<std::ptrdiff_t>(b0),
                                      questions.begin() + static_cast<std::ptrdiff_t>(b1));
    for (auto& a : answer_batch(model, tok, enc, tiles, batch, gc)) {
      if (on_answer) on_answer(a);
      answers.push_back(std::move(a));
    }
    progress.update(static_cast<int64_t>(answers.size()));
    if (util::stop_requested() && answers.size() < questions.size())
      throw util::Stopped(fmt::format("answering stopped by a signal after {} of {} questions", answers.size(), questions.size()));
  }
  progress.finish();
  return answers;
}

}  // namespace phantom::eval
