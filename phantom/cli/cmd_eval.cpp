// phantom eval --model DIR --benchmark NAME --data PATH [--out DIR]
#include <cstdio>
#include <filesystem>

#include "phantom/cli/commands.h"
#include "phantom/runtime.h"
#include "phantom/util/atomic_file.h"
#include "trainers/evaluate.h"

namespace phantom::cli {
namespace fs = std::filesystem;

static const char* kEvalHelp =
    "usage: phantom eval --model DIR --benchmark NAME --data PATH [--out DIR] [options]\n\n"
    "  --benchmark NAME   mc (any MMBench-format TSV: the demo's Fashion-MNIST set, MMBench dev, MMStar)\n"
    "  --data PATH        the benchmark file in its published format\n"
    "  --out DIR          results directory (default: <model>/eval)\n"
    "  --limit N          first N questions only\n"
    "  --num-beams K      default 3 (the paper's protocol)    --max-new-tokens N   default 5 for MC\n"
    "  --batch-size B     questions per generation batch (default 8)\n";

int cmd_eval(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2,
                      {"model", "tokenizer", "benchmark", "data", "out", "limit", "num-beams", "max-new-tokens",
                       "batch-size", "threads", "device", "max-tiles"},
                      {"help"});
  if (a.has("help")) {
    std::fputs(kEvalHelp, stdout);
    return 0;
  }
  const std::string bench = a.require("benchmark"), data_path = a.require("data");
  if (bench != "mc") throw UsageError("unknown benchmark '" + bench + "' (available: mc)");
  set_threads(std::stoll(a.get("threads", "0")));
  auto l = load_for_inference(a);
  GenerationConfig gc;
  gc.num_beams = std::stoll(a.get("num-beams", "3"));
  gc.max_new_tokens = std::stoll(a.get("max-new-tokens", "5"));
  const std::string out = a.get("out", (fs::path(a.require("model")) / "eval").string());
  fs::create_directories(out);
  auto items = eval::read_mc_tsv(data_path, std::stoll(a.get("limit", "0")));
  auto score = eval::evaluate_mc(*l.model, *l.tok, *l.enc, l.tiles, items, gc, std::stoll(a.get("batch-size", "8")),
                                 (fs::path(out) / (bench + ".jsonl")).string());
  std::string md = "| benchmark | questions | accuracy |\n|---|---|---|\n";
  md += "| " + bench + " (" + fs::path(data_path).filename().string() + ") | " + std::to_string(score.n) + " | " +
        fmt::format("{:.2f}", 100 * score.accuracy) + " |\n";
  util::write_file_atomic((fs::path(out) / "summary.md").string(), md);
  std::printf("%s\nanswers: %s/%s.jsonl\n", md.c_str(), out.c_str(), bench.c_str());
  return 0;
}

}  // namespace phantom::cli
