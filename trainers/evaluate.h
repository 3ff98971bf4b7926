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
#include "trainers/benchmarks.h"

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

// One batch of `answer_questions`: the questions generated together (left padded, one KV cache); answers in order.
std::vector<Answer> answer_batch(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                                 const data::TileOptions& tiles, const std::vector<Question>& batch,
                                 const GenerationConfig& gc);

// ---- a paper benchmark end to end (bench_run.cpp): what `phantom eval` and the trainer's benchmark run ----------
//
// Items are cut into fixed global batches of `batch_size` in the reader's order; rank r of W generates batches
// r, r+W, ... (so every batch, hence every answer, is the same whatever W is). Each rank keeps its answers in
// <out>/shards/<name>.rank<r>.json, rewritten atomically after every `flush_every` batches; items already
// answered (results file or any shard) are skipped. Rank 0 then waits for every item to be answered (by any
// shard), scores, writes <out>/<name>.json atomically and removes the shards. Ranks > 0 return no report.
struct RunOptions {
  std::string out_dir;            // results directory
  std::string name;               // results name (default: bench_name)
  int64_t batch_size = 8;         // questions per generation batch
  int64_t num_beams = 3;          // the paper's protocol
  int64_t max_new_tokens = 0;     // 0: the benchmark's (build_prompt)
  int64_t limit = 0;              // first N items only (0: all)
  int64_t flush_every = 1;        // batches between shard rewrites (an interrupted run loses at most these)
  int rank = 0, world = 1;        // data-parallel position (torchrun's RANK / WORLD_SIZE)
  double shard_timeout_s = 3600;  // rank 0: how long to wait for the other ranks' answers
  std::string judge;              // judged benchmarks: command with {input} {output} (empty: answers only)
  std::vector<RowError> row_errors;  // the reader's skipped rows, reported in <name>.row_errors.txt
  bool fresh = false;             // discard this name's earlier results and shards first (one rank only)
};

struct RunReport {
  BenchReport report;        // rank 0 only (empty benchmark name elsewhere)
  int64_t generated = 0;     // items this process generated (not the skipped ones)
  int64_t skipped = 0;       // items already answered before this run
  std::string results_path;  // <out>/<name>.json
};

RunReport run_benchmark(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                        const data::TileOptions& tiles, Bench b, const std::vector<BenchItem>& items,
                        const RunOptions& opt);

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
// The trainer's end-of-run benchmark: an MMBench-format TSV through run_benchmark (reader, paper prompt, beam
// search, MMBench scorer), fresh each time, results in <out_dir>/benchmark.json. Accuracy as a fraction. Under a
// launcher only RANK 0 evaluates (other ranks get an empty score).
McScore evaluate_mc_file(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                         const data::TileOptions& tiles, const std::string& tsv, int64_t limit, const GenerationConfig& gc,
                         int64_t batch_size, const std::string& out_dir);

// Answers every item and scores it; writes every answer to `out_jsonl` when given.
McScore evaluate_mc(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                    const data::TileOptions& tiles, const std::vector<McItem>& items, GenerationConfig gc,
                    int64_t batch_size, const std::string& out_jsonl = "", bool open = false);

}  // namespace phantom::eval
