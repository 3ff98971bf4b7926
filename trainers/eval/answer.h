// Answering questions with a model: prompts built with the chat template, images tiled, batched generation with
// the KV cache (beam search, 3 beams, as the paper), answers decoded. `phantom generate` and run_benchmark
// (trainers/eval/run.h) use it; what is asked and how it is scored is in benchmarks.h.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/images/image.h"
#include "phantom/model/generate.h"
#include "phantom/model/model.h"

namespace phantom::eval {

struct Question {
  std::string id;
  std::string prompt;                    // the full user text (options and suffix included), <image> optional
  std::vector<data::RgbImage> images;
};

struct Answer {
  std::string id;
  std::string text;
};

// Where generation stops: the model's eos_token_id (config.json / generation_config.json, as the official code),
// else the chat template's end of turn.
std::vector<int64_t> stop_token_ids(const PhantomModelImpl& model, const data::Tokenizer& tok,
                                    const data::SampleEncoder& enc);

// Generates answers for `questions` in batches of `batch_size` (left padded). `on_answer` (optional) is called as
// each answer is ready, e.g. to append it to a resumable results file.
std::vector<Answer> answer_questions(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                                     const data::TileOptions& tiles, const std::vector<Question>& questions,
                                     GenerationConfig gc, int64_t batch_size,
                                     const std::function<void(const Answer&)>& on_answer = {});

// One batch of `answer_questions`: the questions generated together (left padded, one KV cache); answers in order.
std::vector<Answer> answer_batch(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                                 const data::TileOptions& tiles, const std::vector<Question>& batch,
                                 const GenerationConfig& gc);

}  // namespace phantom::eval
