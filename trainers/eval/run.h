// A paper benchmark end to end (run.cpp): what `phantom eval` and the trainer's end-of-run benchmark run.
#pragma once

#include <string>
#include <vector>

#include "trainers/eval/answer.h"
#include "trainers/eval/benchmarks.h"

namespace phantom::eval {

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
  std::string judge;              // judged benchmarks: command with {input} {output} [{data}] (empty: answers only)
  std::string judge_data;         // what {data} stands for: the benchmark's (first) input file
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

// The trainer's end-of-run benchmark: an MMBench-format TSV through run_benchmark (reader, paper prompt, beam
// search, MMBench scorer), fresh each time, results in <out_dir>/<name>.json. Under a launcher only RANK 0
// evaluates (other ranks get an empty report).
BenchReport run_benchmark_file(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                               const data::TileOptions& tiles, Bench b, const std::string& file, RunOptions opt);

// A diagnostic for small models that cannot yet follow the letter format: each multiple-choice item asked as an
// open question ("<image>" + question, no options, no suffix), scored by which option's text the answer names
// (option_named). Answers in <out_dir>/<name>.json as every benchmark; accuracy in percent under "accuracy".
BenchReport run_open_questions(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                               const data::TileOptions& tiles, const std::vector<BenchItem>& items, RunOptions opt);

}  // namespace phantom::eval
