// phantom data check --config F [--samples N] [--file F] [key=value ...]
// Renders samples with their supervised tokens marked, reports token counts after image expansion, a length
// histogram, and every sample that is over-length or otherwise bad, with its file and line.
// phantom data bench --config F [--batches N] [key=value ...]
// Times the training data pipeline (the trainer's own BatchMaker and Loader) alone: samples/s, tiles/s, tokens/s.
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

#include "data/annotations.h"
#include "data/chat_template.h"
#include "data/collate.h"
#include "data/images/image.h"
#include "data/loader.h"
#include "data/tokenizers/tokenizer.h"
#include "trainers/cli/flags.h"
#include "trainers/cli/commands.h"
#include "trainers/cli/data_setup.h"
#include "phantom/io/hf_config.h"
#include "phantom/model/runtime.h"
#include "phantom/util/log.h"
#include "trainers/recipe/batches.h"
#include "trainers/recipe/run_config.h"

namespace phantom::cli {

static const char* kDataHelp =
    "usage: phantom data check --config FILE [--samples N] [--file ANNOTATIONS [--format F]] [--threads N] [key=value ...]\n"
    "       phantom data bench --config FILE [--batches N] [--loss po|sft] [key=value ...]\n"
    "       phantom data triples --out TRIPLES.jsonl --input SFT_FILE [sources ...]   (--help for its options)\n\n"
    "  check: every file the recipe reads, each in its stage's format (stages.N.data / stages.N.format, else\n"
    "         data.train / data.format), and data.val; or only --file, in --format (default data.format).\n"
    "         Renders N samples (default 3) of each as text, supervised tokens between [[ and ]], images as\n"
    "         <IMG_CONTEXT>xN, every rejected answer too; reports token counts after image expansion, a length\n"
    "         histogram, every bad row with file:line (unreadable, over-length, a rejected answer equal to the\n"
    "         chosen one, a prompt that differs between the answers), and flags rejected answers much longer or\n"
    "         shorter than the chosen one. Exit 1 on any bad row. --threads N (default: every core).\n"
    "  bench: runs the trainer's data pipeline alone (decode, tile, normalise, tokenise, collate; data.prefetch\n"
    "         worker threads) over N batches of data.train (default 32) and prints samples/s.\n"
    "  triples: preference triples from an SFT file, the rejected answers written by an OpenAI-compatible\n"
    "         endpoint and/or sampled from a phantom model and verified wrong.\n";

static int data_bench(const Args& a) {
  DataSetup d(a);
  set_threads(d.cfg.run.threads);
  data::SkipCounts skipped;
  auto rows = data::read_annotations(d.cfg.data.train, d.cfg.data, skipped, static_cast<uint64_t>(d.cfg.run.seed));
  const bool triples = !rows.empty() && rows.front().is_preference();  // a meta file's datasets too
  const data::SampleSet samples(std::move(rows), triples);
  if (samples.empty()) throw std::runtime_error("no usable samples in " + d.cfg.data.train + " (" + skipped.summary() + ")");
  const bool preference = a.get("loss", samples.preference() ? "po" : "sft") != "sft";
  std::mutex mu;
  const int32_t pad_id = d.enc->chat_template().pad_id(*d.tok);
  recipe::BatchMaker maker{d.cfg, samples, *d.enc, d.tiles, pad_id, preference, d.cfg.shared_prefix, &mu, &skipped};
  data::LoaderOptions lo;
  lo.global_batch = d.cfg.data.batch_size;
  lo.seed = static_cast<uint64_t>(d.cfg.run.seed);
  lo.shuffle = d.cfg.data.shuffle;
  lo.group_by_length = d.cfg.data.group_by_length;
  lo.prefetch = std::max<int64_t>(1, d.cfg.data.prefetch);
  const int64_t tpt = d.enc->image_tokens().tokens_per_tile;
  data::Loader<data::Batch> loader(recipe::estimated_lengths(samples, tpt), lo, maker);
  const int64_t batches = int_flag(a, "batches", 32, 1);
  int64_t n = 0, tiles = 0, tokens = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t b = 0; b < batches; ++b) {
    auto batch = loader.next();
    n += preference ? batch.num_questions : batch.input_ids.size(0);
    tiles += batch.pixel_values.defined() ? batch.pixel_values.size(0) : 0;
    tokens += batch.num_tokens;
  }
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("phantom samples/s %.2f  (%lld samples, %lld tiles, %lld tokens, %.1f s, %lld prefetch threads, %s)\n",
              static_cast<double>(n) / dt, static_cast<long long>(n), static_cast<long long>(tiles),
              static_cast<long long>(tokens), dt, static_cast<long long>(lo.prefetch),
              preference ? (d.cfg.shared_prefix ? "preference, shared prefix" : "preference, naive") : "sft");
  if (skipped.total()) std::printf("skipped: %s\n", skipped.summary().c_str());
  std::printf("pixel buffers: %lld allocated, %lld reused\n", static_cast<long long>(maker.pixel_pool->allocations()),
              static_cast<long long>(maker.pixel_pool->reuses()));
  if (maker.image_cache) {
    const auto c = maker.image_cache->stats();
    std::printf("image cache: %lld hits, %lld misses, %lld images in %.1f MB\n", static_cast<long long>(c.hits),
                static_cast<long long>(c.misses), static_cast<long long>(c.entries), static_cast<double>(c.bytes) / (1 << 20));
  }
  return 0;
}

int cmd_data(int argc, char** argv) {
  const std::string sub = argc < 3 ? "" : argv[2];
  if (sub == "triples") return cmd_data_triples(argc, argv);
  if (sub != "check" && sub != "bench") {
    std::fputs(kDataHelp, sub.empty() ? stderr : stdout);
    return sub == "--help" ? 0 : 2;
  }
  Args a = parse_args(argc, argv, 3, {"config", "samples", "file", "format", "batches", "loss", "threads"}, {"help"});
  if (a.has("help")) {
    std::fputs(kDataHelp, stdout);
    return 0;
  }
  if (sub == "bench") return data_bench(a);
  return data_check(a);
}

}  // namespace phantom::cli
