// phantom eval --model DIR --benchmark NAME[,NAME...] --data PATH[,PATH...] [--out DIR]
// phantom eval --summary DIR[,DIR...] [--size 0.5b|1.8b|3.8b|7b]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "trainers/cli/commands.h"
#include "trainers/cli/flags.h"
#include "phantom/model/runtime.h"
#include "phantom/util/logf.h"
#include "phantom/util/atomic_file.h"
#include "phantom/util/launch_env.h"
#include "phantom/util/stop.h"
#include "trainers/eval/paper_scores.h"
#include "trainers/eval/run.h"

namespace phantom::cli {
namespace fs = std::filesystem;

static const char* kEvalHelp =
    "usage: phantom eval --model DIR --benchmark NAME[,NAME...] --data PATH[,PATH...] [--out DIR] [options]\n"
    "       phantom eval --summary DIR[,DIR...] [--size 0.5b|1.8b|3.8b|7b] [--out FILE.md]\n\n"
    "  --benchmark NAMES  comma list of: mmbench, mmbench_cn, mmstar, sqa, ai2d, seed, pope, mme, chartqa,\n"
    "                     hallusionbench, mathvista, mmvet, llavaw, mathverse, seed2plus, cvbench, mmvet2,\n"
    "                     visualwebbench, blink (mc = any MMBench-format TSV, e.g. the demo's)\n"
    "  --data PATHS       one entry per benchmark, in the same order, in the benchmark's published format;\n"
    "                     POPE and ChartQA take several files joined with '+' (one per split) or their folder,\n"
    "                     MathVerse testmini.json+testmini_text_only.json; VisualWebBench and BLINK the\n"
    "                     data.jsonl of scripts/parquet_to_jsonl.py\n"
    "  --out DIR          results directory (default: <model>/eval): <name>.json per benchmark, summary.md\n"
    "  --image-root DIR   where image paths are resolved (default: each benchmark's release layout)\n"
    "  --split NAME       ScienceQA split (default test)\n"
    "  --skip-bad-rows    report malformed rows / missing images by row id and evaluate the rest\n"
    "                     (default: stop with the first row ids)\n"
    "  --judge CMD        judged sets (MathVista, MathVerse, MM-Vet, MM-Vet-v2, LLaVA-W): a command with {input},\n"
    "                     {output} and optionally {data} (the benchmark file), e.g. \"python scripts/judge.py\n"
    "                     mmvet --input {input} --output {output} --data {data}\"\n"
    "  --limit N          first N items of each benchmark (results named <name>_limitN)\n"
    "  --num-beams K      default 3 (the paper's protocol)\n"
    "  --max-new-tokens N default: the benchmark's (5 MC / yes-no, 512 MathVista / MathVerse / VWB, 1024 MM-Vet(-v2),\n"
    "                     LLaVA-W)\n"
    "  --batch-size B     questions per generation batch (default 8)\n"
    "  --flush-every N    batches between answer-shard rewrites (default 1)\n"
    "  --shard-timeout S  rank 0: seconds to wait for the other ranks' answers (default 3600)\n"
    "  --threads N, --device D, --tokenizer PATH\n"
    "  Prompts and tiles as the model was trained (its config.json \"phantom_prompt\"); each flag overrides one\n"
    "  setting, logged: --chat-template chatml|phi3, --max-tiles N, --thumbnail true|false,\n"
    "  --image-placement prepend|prepend_newline, --multi-image interleaved|first_turn (a benchmark item's several\n"
    "  images are laid side by side into one whatever the rule, as the benchmarks' protocols do)\n\n"
    "  --summary DIRS     no evaluation: one Markdown table of the results in DIRS in the paper's column order,\n"
    "                     the paper's numbers for --size beside them (all four sizes without it) and the\n"
    "                     differences; printed, and written to --out FILE when given\n\n"
    "Resumable: a rerun with the same --out skips answered items. Data parallel: under torchrun (RANK,\n"
    "WORLD_SIZE) rank r generates batches r, r+W, ...; rank 0 merges, scores and writes the results.\n";

namespace {


// POPE / ChartQA given as a folder: the split files it holds.
std::vector<std::string> files_of(eval::Bench b, const std::string& entry) {
  std::error_code ec;
  if (!fs::is_directory(entry, ec) || (b != eval::Bench::POPE && b != eval::Bench::ChartQA)) return split(entry, '+');
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(entry)) {
    const std::string f = e.path().filename().string();
    const bool pope = b == eval::Bench::POPE && f.find("pope") != std::string::npos &&
                      (f.find("random") != std::string::npos || f.find("popular") != std::string::npos ||
                       f.find("adversarial") != std::string::npos);
    const bool chart = b == eval::Bench::ChartQA && (f == "test_human.json" || f == "test_augmented.json");
    if (pope || chart) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw UsageError(entry + ": no " + eval::bench_name(b) + " split files in this folder");
  return files;
}

// "mmbench[_cn]_dev" / "mmbench[_cn]_test" (an MMBench file without answers is a test split; CN when asked for as
// mmbench_cn or the file name says "cn"), else the benchmark's name.
std::string results_name(eval::Bench b, const std::vector<eval::BenchItem>& items, int64_t limit, bool cn) {
  std::string name = eval::bench_name(b);
  if (b == eval::Bench::MMBench) {
    if (cn) name += "_cn";
    bool answers = false;
    for (const auto& it : items) answers |= !it.answer.empty();
    name += answers ? "_dev" : "_test";
  }
  return limit > 0 ? name + "_limit" + std::to_string(limit) : name;
}

// Every results file in `out` (earlier invocations too), so summary.md covers all benchmarks evaluated there.
std::vector<eval::BenchReport> all_reports(const std::string& out, std::vector<eval::BenchReport> fresh) {
  std::set<std::string> have;
  for (const auto& r : fresh) have.insert(r.benchmark);
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.path().extension() != ".json") continue;
    try {
      std::ifstream in(e.path());
      const auto j = nlohmann::json::parse(in);
      if (!j.is_object() || !j.contains("benchmark") || !j.contains("metrics") || !j.contains("items")) continue;
      eval::BenchReport r;
      r.benchmark = j["benchmark"].get<std::string>();
      if (have.count(r.benchmark)) continue;
      r.headline = j.value("headline", "");
      for (const auto& [k, v] : j["metrics"].items())
        if (v.is_number()) r.metrics[k] = v.get<double>();
      r.missing = j.value("missing", int64_t(0));
      r.items.resize(j["items"].size());
      fresh.push_back(std::move(r));
    } catch (const std::exception&) {  // not a results file (a judge's output, say)
    }
  }
  std::sort(fresh.begin(), fresh.end(), [](const auto& x, const auto& y) { return x.benchmark < y.benchmark; });
  return fresh;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2,
                      {"model", "tokenizer", "benchmark", "data", "out", "limit", "num-beams", "max-new-tokens",
                       "batch-size", "threads", "device", "max-tiles", "image-root", "split", "judge", "flush-every",
                       "shard-timeout", "image-placement", "multi-image", "chat-template", "thumbnail", "summary", "size"},
                      {"help", "skip-bad-rows"});
  if (a.has("help")) {
    std::fputs(kEvalHelp, stdout);
    return 0;
  }
  if (a.has("summary")) {  // compare finished results with the paper; no model needed
    const std::string table = eval::comparison_markdown(split(a.require("summary"), ','), a.get("size"));
    std::printf("%s", table.c_str());
    if (a.has("out")) {
      util::write_file_atomic(a.get("out"), "# Phantom evaluation vs the paper\n\n" + table +
                                                "\n(*) not in the paper's main table: no published number here.\n");
      std::printf("written to %s\n", a.get("out").c_str());
    }
    return 0;
  }
  const auto names = split(a.require("benchmark"), ','), data = split(a.require("data"), ',');
  if (names.size() != data.size())
    throw UsageError(std::to_string(names.size()) + " benchmarks but " + std::to_string(data.size()) +
                     " --data entries (one per benchmark, comma-separated)");
  std::vector<eval::Bench> benches;
  for (const auto& n : names) benches.push_back(eval::bench_from_name(n == "mc" ? "mmbench" : n));
  util::StopOnSignals signals;  // SIGINT/SIGTERM: stop after the current batch, its answers saved
  const auto launch = util::launch_position();
  const int rank = launch.rank, world = launch.world;
  log::init(rank, world);

  eval::RunOptions ro;
  ro.out_dir = a.get("out", (fs::path(a.require("model")) / "eval").string());
  ro.batch_size = int_flag(a, "batch-size", 8, 1);
  ro.num_beams = int_flag(a, "num-beams", 3, 1);
  ro.max_new_tokens = int_flag(a, "max-new-tokens", 0, 0);
  ro.limit = int_flag(a, "limit", 0, 0);
  ro.flush_every = int_flag(a, "flush-every", 1, 1);
  ro.shard_timeout_s = number_flag(a, "shard-timeout", 3600, 0);
  ro.judge = a.get("judge");
  ro.rank = rank, ro.world = world;
  if (ro.batch_size < 1 || ro.num_beams < 1 || ro.flush_every < 1 || ro.max_new_tokens < 0 || ro.limit < 0)
    throw UsageError("--batch-size, --num-beams and --flush-every must be positive, --max-new-tokens/--limit >= 0");
  eval::ReadOptions rd;
  rd.image_root = a.get("image-root");
  rd.skip_bad_rows = a.has("skip-bad-rows");
  rd.split = a.get("split", "test");
  rd.skip_hint = "--skip-bad-rows";  // the errors name this command's switch

  // Read every benchmark before loading the model: a bad file fails in seconds, not after the first benchmark.
  std::vector<eval::ReadResult> read;
  for (size_t i = 0; i < benches.size(); ++i) {
    read.push_back(eval::read_benchmark(benches[i], files_of(benches[i], data[i]), rd));
  }
  set_threads(threads_flag(a));
  auto l = load_for_inference(a);
  fs::create_directories(ro.out_dir);

  std::vector<eval::BenchReport> reports;
  std::set<std::string> used;
  for (size_t i = 0; i < benches.size(); ++i) {
    eval::RunOptions o = ro;
    std::string file = fs::path(data[i]).filename().string();
    std::transform(file.begin(), file.end(), file.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    const bool cn = names[i] == "mmbench_cn" || file.find("_cn") != std::string::npos;
    // A custom multiple-choice file (`--benchmark mc`) is read as MMBench but is not MMBench: filed under its own
    // name, so that `eval --summary` never sets it beside the paper's MMBench score.
    const std::string limited = ro.limit > 0 ? "_limit" + std::to_string(ro.limit) : "";
    const std::string base = names[i] == "mc" ? "mc" + limited : results_name(benches[i], read[i].items, ro.limit, cn);
    o.name = base;
    for (int k = 2; used.count(o.name); ++k) o.name = base + "_" + std::to_string(k);
    o.judge_data = files_of(benches[i], data[i]).front();
    used.insert(o.name);
    o.row_errors = read[i].errors;
    auto r = eval::run_benchmark(*l.model, *l.tok, *l.enc, l.tiles, benches[i], read[i].items, o);
    log::info("{}: generated {} answers on this rank, {} were already answered", o.name, r.generated, r.skipped);
    if (rank != 0) continue;
    if (!read[i].errors.empty())
      log::warn("{}: {} rows skipped, listed in {}/{}.row_errors.txt", o.name, read[i].errors.size(), ro.out_dir, o.name);
    reports.push_back(std::move(r.report));
  }
  if (rank != 0) return 0;
  const std::string summary = (fs::path(ro.out_dir) / "summary.md").string();
  std::printf("%s\n", eval::summary_markdown(reports).c_str());
  eval::write_summary(summary, all_reports(ro.out_dir, reports));
  std::printf("results: %s/<benchmark>.json, summary of every benchmark in %s: %s\n", ro.out_dir.c_str(),
              ro.out_dir.c_str(), summary.c_str());
  return 0;
}

}  // namespace phantom::cli
