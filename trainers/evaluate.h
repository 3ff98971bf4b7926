// Answering benchmark questions with a model: prompts built with the chat template, images tiled, batched
// generation with the KV cache (beam search, 3 beams, as the paper), answers decoded. Scoring of the paper's
// benchmarks lives in trainers/benchmarks*.cpp; this file also has the multiple-choice scorer the demo uses.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/image.h"
#include "phantom/generate.h"
#include "phantom/model.h"

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

// Generates answers for `questions` in batches of `batch_size` (left padded). `on_answer` (optional) is called as
// each answer is ready, e.g. to append it to a resumable results file.
std::vector<Answer> answer_questions(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                                     const data::TileOptions& tiles, const std::vector<Question>& questions,
                                     GenerationConfig gc, int64_t batch_size,
                                     const std::function<void(const Answer&)>& on_answer = {});

// The option letter an answer names: "B", "B.", "(B)", "The answer is B", or the text of one option.
std::string extract_option_letter(const std::string& answer, const std::vector<std::string>& options);

// MMBench-format TSV (index, question, [hint], A, B, C, D, answer, category, image base64) as multiple-choice
// questions with the paper's prompt. `limit` > 0 keeps the first rows.
struct McItem {
  Question q;
  std::vector<std::string> options;
  std::string answer, category;
};
// open = true: the question alone (no options, no suffix), scored by which option's text the answer names; a
// measure of what a small model learned when it cannot yet follow the letter format.
std::vector<McItem> read_mc_tsv(const std::string& path, int64_t limit = 0, bool open = false);
// The option whose text the answer contains (the longest match: "T-shirt" before "shirt"); "" when none.
std::string option_named(const std::string& answer, const std::vector<std::string>& options);

struct McScore {
  double accuracy = 0;
  int64_t n = 0;
  std::map<std::string, double> per_category;
};
// Answers every item and scores it; writes every answer to `out_jsonl` when given.
McScore evaluate_mc(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                    const data::TileOptions& tiles, const std::vector<McItem>& items, GenerationConfig gc,
                    int64_t batch_size, const std::string& out_jsonl = "", bool open = false);

}  // namespace phantom::eval
