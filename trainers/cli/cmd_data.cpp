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
#include "phantom/io/hf_config.h"
#include "phantom/model/runtime.h"
#include "phantom/util/log.h"
#include "trainers/recipe/batches.h"
#include "trainers/recipe/run_config.h"

namespace phantom::cli {

static const char* kDataHelp =
    "usage: phantom data check --config FILE [--samples N] [--file ANNOTATIONS] [key=value ...]\n"
    "       phantom data bench --config FILE [--batches N] [--loss po|sft] [key=value ...]\n\n"
    "  check: renders N samples (default 3) as text, supervised tokens between [[ and ]], images as\n"
    "         <img>x<n></img>; reports token counts after image expansion, a length histogram, the answer\n"
    "         boundary cases (first tokens straddling the prompt's end, preference questions whose answers leave\n"
    "         different prompt ids) and every bad sample with file:line.\n"
    "  bench: runs the trainer's data pipeline alone (decode, tile, normalise, tokenise, collate; data.prefetch\n"
    "         worker threads) over N batches of data.train (default 32) and prints samples/s.\n";

// What both subcommands build from a run config: the tokenizer, the encoder and the tiling of the model.
struct DataSetup {
  recipe::RunConfig cfg;
  ModelConfig mc;
  std::unique_ptr<data::Tokenizer> tok;
  std::unique_ptr<data::SampleEncoder> enc;
  data::TileOptions tiles;

  explicit DataSetup(const Args& a) : cfg(recipe::load_run_config(a.require("config"), a.overrides)) {
    data::check_paths(cfg.data);
    mc = cfg.model;
    if (!mc.path.empty()) read_hf_config(mc.path, mc);
    const int64_t g = mc.vision.image_size / mc.vision.patch_size;
    const auto side = static_cast<int64_t>(g * mc.downsample_ratio);
    tok = data::load_tokenizer(cfg.data.tokenizer);
    enc = std::make_unique<data::SampleEncoder>(*tok, data::ChatTemplate::resolve(cfg.data.chat_template, mc.llm.family),
                                                data::ImageTokens::from_tokenizer(*tok, side * side));
    enc->set_image_placement(cfg.data.image_placement);
    enc->set_answer_tokenization(cfg.data.answer_tokenization);
    tiles.tile = static_cast<int>(mc.vision.image_size);
    tiles.max_num = static_cast<int>(cfg.data.max_tiles);
    tiles.use_thumbnail = cfg.data.use_thumbnail;
  }
};

static int data_bench(const Args& a) {
  DataSetup d(a);
  set_threads(d.cfg.run.threads);
  data::SkipCounts skipped;
  const auto samples = data::read_annotations(d.cfg.data.train, d.cfg.data, skipped, static_cast<uint64_t>(d.cfg.run.seed));
  if (samples.empty()) throw std::runtime_error("no usable samples in " + d.cfg.data.train + " (" + skipped.summary() + ")");
  const bool preference = a.get("loss", samples.front().is_preference() ? "po" : "sft") != "sft";
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

// Text of ids with runs of <IMG_CONTEXT> collapsed and supervised spans marked.
static std::string render(const data::Tokenizer& tok, const std::vector<int32_t>& ids, const std::vector<int32_t>& labels,
                          int32_t ctx_id) {
  std::string out;
  size_t i = 0;
  while (i < ids.size()) {
    const bool sup = labels[i] != data::kIgnore;
    size_t j = i;
    while (j < ids.size() && (labels[j] != data::kIgnore) == sup && !(ids[j] == ctx_id && j > i && ids[j - 1] != ctx_id)) {
      if (ids[j] == ctx_id) {
        size_t k = j;
        while (k < ids.size() && ids[k] == ctx_id) ++k;
        if (j > i) break;
        out += "<IMG_CONTEXT>x" + std::to_string(k - j);
        j = k;
        i = k;
        continue;
      }
      ++j;
    }
    if (j > i) {
      const std::string text = tok.decode(std::vector<int32_t>(ids.begin() + static_cast<long>(i), ids.begin() + static_cast<long>(j)));
      out += sup ? "[[" + text + "]]" : text;
    }
    i = std::max(i + (j == i ? 1 : 0), j);
  }
  return out;
}

int cmd_data(int argc, char** argv) {
  const std::string sub = argc < 3 ? "" : argv[2];
  if (sub != "check" && sub != "bench") {
    std::fputs(kDataHelp, sub.empty() ? stderr : stdout);
    return sub == "--help" ? 0 : 2;
  }
  Args a = parse_args(argc, argv, 3, {"config", "samples", "file", "batches", "loss"}, {"help"});
  if (a.has("help")) {
    std::fputs(kDataHelp, stdout);
    return 0;
  }
  if (sub == "bench") return data_bench(a);
  DataSetup d(a);
  auto& cfg = d.cfg;
  auto& tok = d.tok;
  auto& enc = *d.enc;
  const auto& tiles = d.tiles;

  const std::string file = a.get("file", cfg.data.train);
  data::DataConfig dc = cfg.data;
  dc.on_error = "skip";  // collect every problem
  data::SkipCounts skipped;
  auto samples = data::read_annotations(file, dc, skipped, static_cast<uint64_t>(cfg.run.seed));
  const int64_t show = int_flag(a, "samples", 3, 0);
  std::printf("image placement: %s (every image first, as \"%s\" + text; data.image_placement)\n",
              enc.image_placement().c_str(), enc.image_placement() == "prepend" ? "<image>" : "<image>\\n");
  const int32_t ctx = enc.image_tokens().img_context;
  std::map<int64_t, int64_t> histogram;  // bucket upper bound -> count
  int64_t total_tokens = 0, longest = 0, counted = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    try {
      std::vector<int64_t> counts;
      for (auto& p : s.images) counts.push_back(data::preprocess_image(data::load_image(p), tiles).size(0));
      data::EncodedConversation c;
      int64_t len = 0;
      if (s.is_preference()) {  // shown: the chosen answer; counted: the PO row
        const auto p = enc.preference(s, counts);
        c = data::chosen_as_conversation(p);
        len = p.row_length(cfg.shared_prefix);
      } else {
        c = enc.conversation(s, counts);
        len = static_cast<int64_t>(c.ids.size());
      }
      if (static_cast<int64_t>(i) < show)
        std::printf("--- sample %zu (%s), %lld tokens ---\n%s\n", i, s.where.c_str(), static_cast<long long>(len),
                    render(*tok, c.ids, c.labels, ctx).c_str());
      if (len > cfg.data.max_length)
        skipped.add("over-length sample", "data error at " + s.where + ": over-length sample (" + std::to_string(len) +
                                              " tokens after image expansion > data.max_length " +
                                              std::to_string(cfg.data.max_length) + ")");
      int64_t bucket = 16;
      while (bucket < len) bucket *= 2;
      ++histogram[bucket];
      total_tokens += len, longest = std::max(longest, len), ++counted;
    } catch (const std::exception& e) {
      skipped.add("unreadable sample", "data error at " + s.where + ": " + e.what());
    }
  }
  std::printf("\n%lld samples read from %s, %lld tokens after image expansion (mean %.1f, max %lld)\nlength histogram:\n",
              static_cast<long long>(counted), file.c_str(), static_cast<long long>(total_tokens),
              counted ? static_cast<double>(total_tokens) / static_cast<double>(counted) : 0.0, static_cast<long long>(longest));
  for (auto& [b, n] : histogram)
    std::printf("  <= %6lld tokens: %8lld %s\n", static_cast<long long>(b), static_cast<long long>(n),
                std::string(static_cast<size_t>(std::min<int64_t>(60, 60 * n / std::max<int64_t>(1, counted))), '#').c_str());
  std::printf("%s\n", enc.counts_summary().c_str());
  std::printf("problems: %s\n", skipped.summary().c_str());
  for (auto& e : skipped.examples) std::printf("  %s\n", e.c_str());
  if (static_cast<int64_t>(skipped.examples.size()) < skipped.total())  // SkipCounts keeps the first ones only
    std::printf("  ... list cut: %zu of %lld problems shown (the counts above cover all of them)\n",
                skipped.examples.size(), static_cast<long long>(skipped.total()));
  return skipped.total() ? 1 : 0;
}

}  // namespace phantom::cli
