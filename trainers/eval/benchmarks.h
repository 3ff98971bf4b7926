// The paper's benchmarks without the generation itself: readers for each benchmark's published files, the prompts
// Phantom is evaluated with (docs/paper.md, "Evaluation"), the scorers, result files and the hook for GPT-judged
// benchmarks. docs/evaluation.md describes every format read and every metric.
//
//   bench_files.{h,cpp}TSV / JSON / JSONL / base64 helpers, row-error collection (internal to the readers)
//   readers_*.cpp   one reader per benchmark: files -> BenchItems (+ row errors)
//   prompts.cpp     BenchItem -> prompt text and max_new_tokens
//   scorers.cpp     option-letter extraction, accuracy, ChartQA, POPE, MME, HallusionBench
//   results.cpp     results JSON + summary Markdown (atomic), resume, MMBench submission, judge files + hook
//   answer.{h,cpp}  generation: prompts through the chat template, batched beam search (needs the model)
//   run.{h,cpp}     a benchmark end to end: resumable rank shards, merge, scoring (`phantom eval`, the trainer)
//
// A run: items = read_benchmark(...); for each item not in answered_ids(results): generate(build_prompt(...));
// report = score_benchmark(...); write_results(...); for judged sets also write_judge_input + JudgeCommand.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "data/images/image.h"

namespace phantom::eval {

enum class Bench {
  MMBench,         // MMBench / MMBench-CN dev or test TSV
  MMStar,          // MMStar TSV
  ScienceQA,       // ScienceQA-IMG (problems.json + images/)
  AI2D,            // AI2D test questions
  SEED,            // SEED-Bench-IMG
  POPE,            // POPE, one JSONL per split
  MME,             // MME_Benchmark_release_version folder
  ChartQA,         // ChartQA test_human / test_augmented
  HallusionBench,  // HallusionBench.json
  MathVista,       // MathVista testmini (GPT judge)
  MMVet,           // MM-Vet (GPT judge)
  LLaVAW,          // LLaVA-Bench in-the-wild (GPT judge)
  // Sets beyond the paper's main table that Phantom's own evaluation code covers (readers_phantom_extra_sets.cpp):
  MathVerse,       // MathVerse testmini (+ text-only), GPT judge
  SEED2Plus,       // SEED-Bench-2-Plus (text-rich: charts, maps, webs)
  CVBench,         // CV-Bench (2D and 3D)
  MMVet2,          // MM-Vet-v2 (several images per question), GPT judge
  // Published as Hugging Face parquet only: read from the JSONL that scripts/parquet_to_jsonl.py writes.
  VisualWebBench,  // VisualWebBench (7 web tasks: captioning, OCR, QA, grounding, action prediction)
  BLINK,           // BLINK (14 perception subtasks, 1-4 images per question)
};

// "mmbench", "mmstar", "sqa", "ai2d", "seed", "pope", "mme", "chartqa", "hallusionbench", "mathvista", "mmvet",
// "llavaw", "mathverse", "seed2plus", "cvbench", "mmvet2", "visualwebbench", "blink" (a few aliases such as "mm-vet", "llava-w", "scienceqa",
// "seed-2-plus", "mm-vet-v2" are accepted by bench_from_name).
std::string bench_name(Bench b);
Bench bench_from_name(const std::string& name);
// Whether the benchmark is scored by an external GPT judge (MathVista, MathVerse, MM-Vet, MM-Vet-v2, LLaVA-W).
bool bench_is_judged(Bench b);

// One image of an item: a file on disk, or encoded bytes (base64-decoded from a TSV). Decoded only on demand so
// a 4k-row TSV does not hold 4k decoded images.
struct BenchImage {
  std::string path;   // file path, or empty
  std::string bytes;  // encoded image (JPEG/PNG...) when it came inline
  std::string name;   // what errors call it: the path, or "<file> row <id>"
  data::RgbImage decode() const;
};

struct BenchItem {
  std::string id;                    // the benchmark's own question id (MMBench index, POPE question_id, ...)
  std::string question;              // question text as published (no hint, no options, no suffix)
  std::vector<std::string> options;  // option texts; options[i] is letter 'A' + i
  std::vector<BenchImage> images;    // zero (text-only rows), one, or several (MM-Vet-v2: laid side by side)
  std::string answer;                // ground truth: a letter, "yes"/"no", a ChartQA label, a judge reference
  std::string category;              // what per-category accuracy groups by
  std::map<std::string, std::string> extra;  // benchmark-specific fields (hint, split, set_id, raw JSON, ...)
};

// A row that could not become an item: malformed, missing a field, or its image missing/undecodable.
struct RowError {
  std::string file;
  std::string row;  // the row's id when it has one, else "line N" / "row N"
  std::string message;
  std::string str() const { return file + ": row " + row + ": " + message; }
};

struct ReadOptions {
  std::string image_root;     // directory the benchmark's image paths are relative to (default: next to the file)
  bool skip_bad_rows = false; // false: any row error throws (one line naming the file and row ids); true: logged,
                              // the row dropped, and the errors returned in ReadResult::errors
  bool decode_images = false; // also decode every image while reading (finds corrupt files before generation)
  std::string split = "test"; // ScienceQA: which split of problems.json
  std::string skip_hint = "ReadOptions::skip_bad_rows";  // how the caller's user skips bad rows, named in the
                                                         // error ("--skip-bad-rows"; empty: they cannot)
};

struct ReadResult {
  std::vector<BenchItem> items;
  std::vector<RowError> errors;
};

// ---- readers (readers_*.cpp); formats in docs/evaluation.md ------------------------------------------------
ReadResult read_mmbench(const std::string& tsv, const ReadOptions& opt = {});
ReadResult read_mmstar(const std::string& tsv, const ReadOptions& opt = {});
ReadResult read_scienceqa(const std::string& problems_json, const ReadOptions& opt = {});
ReadResult read_ai2d(const std::string& json_file_or_dir, const ReadOptions& opt = {});
ReadResult read_seed(const std::string& json, const ReadOptions& opt = {});
ReadResult read_pope(const std::vector<std::string>& jsonl_per_split, const ReadOptions& opt = {});
ReadResult read_mme(const std::string& root_dir, const ReadOptions& opt = {});
ReadResult read_chartqa(const std::vector<std::string>& json_per_split, const ReadOptions& opt = {});
ReadResult read_hallusionbench(const std::string& json, const ReadOptions& opt = {});
ReadResult read_mathvista(const std::string& json, const ReadOptions& opt = {});
ReadResult read_mmvet(const std::string& json, const ReadOptions& opt = {});
ReadResult read_llavaw(const std::string& questions_jsonl, const ReadOptions& opt = {});
// readers_phantom_extra_sets.cpp: MathVerse takes testmini.json and optionally testmini_text_only.json.
ReadResult read_mathverse(const std::vector<std::string>& json_files, const ReadOptions& opt = {});
ReadResult read_seed2plus(const std::string& json, const ReadOptions& opt = {});
ReadResult read_cvbench(const std::string& test_jsonl, const ReadOptions& opt = {});
ReadResult read_mmvet2(const std::string& json, const ReadOptions& opt = {});
// readers_parquet_sets.cpp: the data.jsonl of scripts/parquet_to_jsonl.py (image paths relative to its directory).
ReadResult read_visualwebbench(const std::string& jsonl, const ReadOptions& opt = {});
ReadResult read_blink(const std::string& jsonl, const ReadOptions& opt = {});
// Dispatch by benchmark; `files` is one path except for POPE and ChartQA (one per split) and MathVerse.
// Whatever the reader, a benchmark with no question left (a header without rows, every row bad and skipped) and
// two questions of one id (the later answer would replace the earlier) are errors naming the file.
ReadResult read_benchmark(Bench b, const std::vector<std::string>& files, const ReadOptions& opt = {});

// ---- prompts (prompts.cpp) -------------------------------------------------------------------------------
inline constexpr const char* kMultipleChoiceSuffix = "\nAnswer with the option's letter from the given choices directly.";
inline constexpr const char* kShortAnswerSuffix = "\nAnswer the question using a single word or phrase.";
inline constexpr const char* kYesNoSuffix = "\nPlease answer yes or no.";

struct BenchPrompt {
  std::string text;        // the user turn: "<image>" + question (+ options, suffix); no chat template
  int64_t max_new_tokens;  // 5 for MC and yes/no sets, 512 MathVista / MathVerse / VisualWebBench, 1024 MM-Vet(-v2) / LLaVA-W
};
BenchPrompt build_prompt(Bench b, const BenchItem& item);
int64_t max_new_tokens(Bench b);

// ---- scoring (scorers.cpp) -------------------------------------------------------------------------------
// text_metrics.cpp: the scorers VisualWebBench and BLINK are evaluated with, as their published Python computes.
// ROUGE F-scores (0..1) of the `rouge` package (1.0.1, default exclusive mode) for one hypothesis/reference pair:
// sentences split at '.', words at single spaces, n-grams and LCS words as sets, F = 2PR / (P + R + 1e-8). nullopt
// where the package raises (no sentence left in the hypothesis or the reference, e.g. "" or ".").
struct RougeF {
  double rouge_1 = 0, rouge_2 = 0, rouge_l = 0;
};
std::optional<RougeF> rouge_f(const std::string& hypothesis, const std::string& reference);
// VisualWebBench's multiple-choice parse (choices A-H): a one-character answer upper-cased, "X." at the start, else
// "(X)" or " X " after dropping ,.!?;:'" (the last occurrence when several); the 0-based index, or nullopt.
std::optional<int> visualwebbench_choice(const std::string& response);
// BLINK's parse: the first "(x)" with one word character inside gives x, else the whole response.
std::string blink_choice(const std::string& response);
// A Python list as str() prints it: numbers by repr (0.2, 1.0, 1e-05), strings quoted as repr quotes them.
std::string py_list_repr(const std::vector<double>& values);
std::string py_list_repr(const std::vector<std::string>& values);

// The option a free-form answer picks: "B", "B.", "(B)", "B) text", "The answer is B", "Answer: B", or the text
// of exactly one option. Returns the 0-based option index, or nullopt when none or several are named.
std::optional<int> extract_option(const std::string& response, const std::vector<std::string>& options);
// For open answers (the question asked without its options): the option whose text the answer contains,
// case-insensitively, the longest match winning ("T-shirt" before "shirt"); nullopt when none.
std::optional<int> option_named(const std::string& response, const std::vector<std::string>& options);

// ChartQA's relaxed correctness: numbers (a trailing '%' stripped) within 5% of the target (relative to the
// target; a zero target needs an exact match); anything else equal ignoring case and surrounding spaces.
bool relaxed_correct(const std::string& prediction, const std::string& target, double tolerance = 0.05);
// Phantom's ChartQA post-processing before the comparison: an answer with a digit keeps its first word.
std::string chartqa_postprocess(const std::string& response);

// POPE's official normalisation: first sentence, commas dropped, "no"/"not" as a word -> "no", else "yes".
std::string pope_normalize(const std::string& response);
// MME's official parse: "yes"/"no" exactly, else by the first four characters, else "other" (lower-cased input).
std::string mme_normalize(const std::string& response);
// HallusionBench as Phantom scores it: "yes" anywhere (case-insensitive) -> "yes", else "no".
std::string hallusion_normalize(const std::string& response);

// One scored item, as written to the results file.
struct ItemResult {
  std::string id;
  std::string category;
  std::string prompt;
  std::string response;
  bool answered = false;       // a response exists (written as null otherwise, so a resumed run regenerates it)
  std::string answer;
  std::string prediction;      // what the scorer read from the response (a letter, "yes"/"no", ...)
  std::optional<bool> correct; // unset for judged benchmarks and for answers not in the file (MMBench test)
};

struct BenchReport {
  std::string benchmark;                  // the name results are filed under ("mmbench_dev", "pope", ...)
  std::string headline;                   // the metric the paper reports (a key of metrics), or empty
  std::map<std::string, double> metrics;  // percentages except counts (n, missing) and MME scores (sums)
  std::vector<ItemResult> items;
  int64_t missing = 0;                    // items without a response (scored as wrong)
};

// Scores responses (item id -> generated text) against the items. Items without a response count as wrong and
// are counted in `missing`. Judged benchmarks get items without correctness and metrics {n, missing}.
BenchReport score_benchmark(Bench b, const std::string& name, const std::vector<BenchItem>& items,
                            const std::map<std::string, std::string>& responses);

// MME's category groups: the 10 perception and the 4 cognition categories.
const std::vector<std::string>& mme_perception_categories();
const std::vector<std::string>& mme_cognition_categories();

// ---- results (results.cpp) -------------------------------------------------------------------------------
// <dir>/<name>.json: {benchmark, headline, metrics, missing, items: [{id, category, prompt, response, answer,
// prediction, correct}]}, written atomically (tmp + fsync + rename).
void write_results(const std::string& path, const BenchReport& report);
// Item id -> response of an existing results file (empty when the file does not exist): what a resumed run
// needs to skip generated items and rescore them.
std::map<std::string, std::string> read_responses(const std::string& results_path);
std::set<std::string> answered_ids(const std::string& results_path);
// One Markdown table, a row per benchmark: name, headline metric and value, item count, missing; written atomically.
std::string summary_markdown(const std::vector<BenchReport>& reports);
void write_summary(const std::string& path, const std::vector<BenchReport>& reports);

// MMBench / MMBench-CN (test) upload: index, question, hint, A..E, answer (when known), prediction (the extracted
// letter, else the raw response), category, l2-category. A path ending in ".xlsx" is written as the spreadsheet the
// OpenCompass server takes (xlsx.h), anything else as a TSV.
void write_mmbench_submission(const std::string& path, const std::vector<BenchItem>& items,
                              const std::map<std::string, std::string>& responses);

// Judge input files in the format each benchmark's official script reads:
//   MathVista: JSON object pid -> problem (every published field) + "response"
//   MM-Vet:    JSON object id -> answer text
//   LLaVA-W:   JSONL, one {question_id, prompt, text, answer_id, model_id, metadata} per line
void write_judge_input(Bench b, const std::string& path, const std::vector<BenchItem>& items,
                       const std::map<std::string, std::string>& responses, const std::string& model_id = "phantom");

// Scores a judge wrote, read back by file shape:
//   a JSON object of numbers (nested objects flattened with '/'; MathVista's calculate_score output is one);
//   an MM-Vet grade file (id -> {score: [runs] | number}): "total" and per capability, percent (needs items for
//   the capabilities; they are in BenchItem::category, comma-separated);
//   a LLaVA-W review JSONL ({"tuple": [reference, model], "category"} per line): per category and "all", the
//   model's mean score relative to the reference's, percent.
std::map<std::string, double> read_judge_scores(Bench b, const std::string& path,
                                                const std::vector<BenchItem>& items = {});

// Runs an external judge: `command` with {input}, {output} and {data} (the benchmark's first input file, for judges
// that need the questions and references) replaced by the shell-quoted paths, through /bin/sh. A non-zero exit or a missing output file is a one-line error; otherwise the scores are read back
// with read_judge_scores and merged into the report's metrics as "judge/<name>".
struct JudgeCommand {
  std::string command;  // e.g. "python scripts/judge.py mmvet --input {input} --output {output} --data {data}"
  std::string data;     // what {data} stands for
  std::map<std::string, double> run(Bench b, const std::string& input, const std::string& output,
                                    const std::vector<BenchItem>& items = {}) const;
};
// Merges judge scores into a report and sets its headline to the benchmark's main judge number when present
// (MathVista "average/accuracy", MathVerse / MM-Vet "total", LLaVA-W "all", or "overall").
void merge_judge_scores(BenchReport& report, const std::map<std::string, double>& scores);

}  // namespace phantom::eval
