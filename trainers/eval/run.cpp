// A paper benchmark end to end: the paper's prompts, batched beam-search generation with the KV cache, resumable
// per-rank answer shards, rank 0's merge, scoring, the results file and the judge. `phantom eval` and the trainer's
// end-of-run benchmark both call run_benchmark (docs/evaluation.md, "Running").
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "phantom/util/atomic_file.h"
#include "phantom/util/launch_env.h"
#include "phantom/util/stop.h"
#include "phantom/util/logf.h"
#include "trainers/eval/run.h"

namespace phantom::eval {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A rank's answers so far, and the items it could not answer (an image that does not decode) with the reason.
struct Shard {
  std::map<std::string, std::string> answers, errors;
};

std::string shard_path(const std::string& out, const std::string& name, int rank) {
  return (fs::path(out) / "shards" / (name + ".rank" + std::to_string(rank) + ".json")).string();
}

std::vector<std::string> shard_files(const std::string& out, const std::string& name) {
  std::vector<std::string> files;
  std::error_code ec;
  const auto dir = fs::path(out) / "shards";
  if (!fs::is_directory(dir, ec)) return files;
  const std::string prefix = name + ".rank";
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(prefix, 0) == 0 && f.size() > 5 && f.compare(f.size() - 5, 5, ".json") == 0 &&
        f.find(".tmp.") == std::string::npos)
      files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Shards are only ever written whole (tmp + rename), so a file that does not parse was edited by hand.
Shard read_shard(const std::string& path) {
  Shard s;
  std::error_code ec;
  if (!fs::exists(path, ec)) return s;
  std::ifstream in(path);
  json j;
  try {
    j = json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not an answer shard (" + e.what() + "); delete it to regenerate its answers");
  }
  for (const char* k : {"answers", "errors"}) {
    if (!j.contains(k)) continue;
    if (!j[k].is_object()) throw std::runtime_error(path + ": '" + std::string(k) + "' is not an object");
    for (const auto& [id, v] : j[k].items())
      if (v.is_string()) (std::string(k) == "answers" ? s.answers : s.errors)[id] = v.get<std::string>();
  }
  return s;
}

void write_shard(const std::string& path, const Shard& s, const std::string& name, int rank, int world) {
  const json j = {{"benchmark", name}, {"rank", rank}, {"world", world}, {"answers", s.answers}, {"errors", s.errors}};
  util::write_file_atomic(path, j.dump(0, ' ', false, json::error_handler_t::replace) + "\n");
}

// Everything answered so far: the results file of an earlier run, then every shard (newer) on top.
void known_answers(const std::string& results, const std::string& out, const std::string& name,
                   std::map<std::string, std::string>& answers, std::map<std::string, std::string>& errors) {
  answers = read_responses(results);
  errors.clear();
  for (const auto& f : shard_files(out, name)) {
    auto s = read_shard(f);
    for (auto& [id, r] : s.answers) answers[id] = r;
    for (auto& [id, e] : s.errors) errors[id] = e;
  }
  for (const auto& [id, r] : answers) errors.erase(id);
}

std::string judge_ext(Bench b) { return b == Bench::LLaVAW ? ".jsonl" : ".json"; }

// This rank's temporary files that a kill interrupted are removed; a fresh run (one rank) also removes the
// earlier results and shards.
void prepare_out_dir(const RunOptions& opt, const std::string& name, const std::string& results_path,
                     const std::string& mine_path) {
  {  // temporary files of this rank's writes that a kill interrupted
    std::error_code ec;
    const std::string tmp_prefix = fs::path(mine_path).filename().string() + ".tmp.";
    for (const auto& e : fs::directory_iterator(fs::path(opt.out_dir) / "shards"))
      if (e.path().filename().string().rfind(tmp_prefix, 0) == 0) fs::remove(e.path(), ec);
  }
  if (opt.fresh) {
    if (opt.world != 1) throw std::runtime_error("a fresh benchmark run (earlier answers discarded) needs one rank");
    std::error_code ec;
    fs::remove(results_path, ec);
    for (const auto& f : shard_files(opt.out_dir, name)) fs::remove(f, ec);
  }
}

// Rank 0: polls the results file and the shards until every item is answered (or failed) by some rank; times
// out after opt.shard_timeout_s naming the missing ranks. `known` / `known_errors` end up holding every answer.
void wait_for_ranks(const RunOptions& opt, const std::string& name, const std::vector<BenchItem>& items,
                    const std::string& results_path, const std::function<int(size_t)>& owner,
                    std::map<std::string, std::string>& known, std::map<std::string, std::string>& known_errors) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto last_log = t0;
  while (true) {
    known_answers(results_path, opt.out_dir, name, known, known_errors);
    std::map<int, std::vector<std::string>> missing;  // owner rank -> ids
    for (size_t i = 0; i < items.size(); ++i)
      if (!known.count(items[i].id) && !known_errors.count(items[i].id)) missing[owner(i)].push_back(items[i].id);
    if (missing.empty()) break;
    const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
    if (waited >= opt.shard_timeout_s) {
      std::string msg = name + ": timed out after " + fmt::format("{:.0f}", waited) + " s waiting for";
      for (auto& [r, ids] : missing)
        msg += fmt::format(" rank {} of {} ({} items unanswered, first {}; shard {})", r, opt.world, ids.size(),
                           ids.front(), shard_path(opt.out_dir, name, r));
      throw std::runtime_error(msg + "; rerun the missing ranks (answers so far are kept)");
    }
    if (std::chrono::duration<double>(Clock::now() - last_log).count() >= 30) {
      last_log = Clock::now();
      for (auto& [r, ids] : missing) log::info("{}: waiting for rank {} ({} items left)", name, r, ids.size());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// Rank 0, every item answered: the scored results, the row errors, and the submission / judge files of the
// benchmarks that have them.
void write_outputs(RunReport& rr, Bench b, const std::string& name, const std::vector<BenchItem>& items,
                   const std::map<std::string, std::string>& known,
                   const std::map<std::string, std::string>& known_errors, const RunOptions& opt) {
  rr.report = score_benchmark(b, name, items, known);
  // Rows that never became items (reader) and items that could not be generated (images), by row id.
  const std::string err_path = (fs::path(opt.out_dir) / (name + ".row_errors.txt")).string();
  std::string err_text;
  for (const auto& e : opt.row_errors) err_text += e.str() + "\n";
  for (const auto& it : items)
    if (auto e = known_errors.find(it.id); e != known_errors.end()) err_text += "row " + it.id + ": " + e->second + "\n";
  std::error_code ec;
  if (!err_text.empty()) util::write_file_atomic(err_path, err_text);
  else fs::remove(err_path, ec);
  write_results(rr.results_path, rr.report);
  for (const auto& f : shard_files(opt.out_dir, name)) fs::remove(f, ec);  // the results file now holds them all

  bool has_answers = false;
  for (const auto& it : items) has_answers |= !it.answer.empty();
  if (b == Bench::MMBench && !has_answers)
    for (const char* ext : {".xlsx", ".tsv"})  // the server takes the .xlsx; the TSV is for reading
      write_mmbench_submission((fs::path(opt.out_dir) / (name + "_submission" + ext)).string(), items, known);
  if (bench_is_judged(b)) {
    const std::string in = (fs::path(opt.out_dir) / (name + "_judge_input" + judge_ext(b))).string();
    write_judge_input(b, in, items, known);
    if (!opt.judge.empty()) {
      const std::string judged = (fs::path(opt.out_dir) / (name + "_judge_output" + judge_ext(b))).string();
      merge_judge_scores(rr.report, JudgeCommand{opt.judge, opt.judge_data}.run(b, in, judged, items));
      write_results(rr.results_path, rr.report);
    } else {
      log::info("{}: answers in the judge's format in {} (score them with --judge)", name, in);
    }
  }
}

}  // namespace

RunReport run_benchmark(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                        const data::TileOptions& tiles, Bench b, const std::vector<BenchItem>& all_items,
                        const RunOptions& opt) {
  if (opt.world < 1 || opt.rank < 0 || opt.rank >= opt.world)
    throw std::runtime_error("rank " + std::to_string(opt.rank) + " is outside world size " + std::to_string(opt.world));
  if (opt.batch_size < 1) throw std::runtime_error("batch size must be positive");
  const std::string name = opt.name.empty() ? bench_name(b) : opt.name;
  const size_t n = opt.limit > 0 ? std::min(all_items.size(), static_cast<size_t>(opt.limit)) : all_items.size();
  const std::vector<BenchItem> items(all_items.begin(), all_items.begin() + static_cast<std::ptrdiff_t>(n));
  const auto B = static_cast<size_t>(opt.batch_size);
  const size_t n_batches = (n + B - 1) / B;
  auto owner = [&](size_t i) { return static_cast<int>((i / B) % static_cast<size_t>(opt.world)); };

  RunReport rr;
  rr.results_path = (fs::path(opt.out_dir) / (name + ".json")).string();
  fs::create_directories(fs::path(opt.out_dir) / "shards");
  const std::string mine_path = shard_path(opt.out_dir, name, opt.rank);
  prepare_out_dir(opt, name, rr.results_path, mine_path);

  // Resume: skip what any earlier run (of any world size) answered; keep this rank's old shard entries.
  std::map<std::string, std::string> known, known_errors;
  known_answers(rr.results_path, opt.out_dir, name, known, known_errors);
  Shard mine = read_shard(mine_path);
  std::vector<size_t> todo;
  for (size_t i = 0; i < n; ++i) {
    if (owner(i) != opt.rank) continue;
    if (known.count(items[i].id)) ++rr.skipped;
    else todo.push_back(i);
  }
  if (rr.skipped) log::info("{}: {} of this rank's items already answered, {} to generate", name, rr.skipped, todo.size());

  GenerationConfig gc;
  gc.num_beams = opt.num_beams;
  gc.max_new_tokens = opt.max_new_tokens > 0 ? opt.max_new_tokens : max_new_tokens(b);
  log::Progress progress(name + (opt.world > 1 ? " rank " + std::to_string(opt.rank) : std::string()),
                         static_cast<int64_t>(todo.size()));
  int64_t unflushed = 0;
  size_t next = 0;  // position in todo
  for (size_t k = static_cast<size_t>(opt.rank); k < n_batches; k += static_cast<size_t>(opt.world)) {
    std::vector<Question> batch;
    for (; next < todo.size() && todo[next] / B == k; ++next) {
      const BenchItem& it = items[todo[next]];
      Question q;
      q.id = it.id;
      q.prompt = build_prompt(b, it).text;
      try {
        // Several images (MM-Vet-v2) become one, side by side, as Phantom lays them out (data::concat_horizontal).
        std::vector<data::RgbImage> decoded;
        for (const auto& img : it.images) decoded.push_back(img.decode());
        if (decoded.size() > 1) q.images.push_back(data::concat_horizontal(decoded));
        else if (decoded.size() == 1) q.images.push_back(std::move(decoded[0]));
      } catch (const std::exception& e) {
        const std::string msg = std::string("image not usable: ") + e.what();
        log::warn("{}: row {}: {}; left unanswered", name, it.id, msg);
        mine.errors[it.id] = msg;
        ++unflushed;
        continue;
      }
      batch.push_back(std::move(q));
    }
    if (!batch.empty()) {
      for (auto& a : answer_batch(model, tok, enc, tiles, batch, gc)) {
        mine.errors.erase(a.id);
        mine.answers[a.id] = std::move(a.text);
      }
      rr.generated += static_cast<int64_t>(batch.size());
      ++unflushed;
    }
    if (unflushed >= opt.flush_every) write_shard(mine_path, mine, name, opt.rank, opt.world), unflushed = 0;
    progress.update(static_cast<int64_t>(next));
    if (util::stop_requested()) {  // SIGINT/SIGTERM: keep what is answered, a rerun continues from it
      if (unflushed) write_shard(mine_path, mine, name, opt.rank, opt.world);
      progress.finish();
      throw util::Stopped(fmt::format("{}: stopped by a signal after {} of this rank's {} items; the answers are saved "
                                      "in {} and the same command continues from them",
                                      name, next, todo.size(), mine_path));
    }
  }
  if (unflushed) write_shard(mine_path, mine, name, opt.rank, opt.world);
  progress.finish();
  if (opt.rank != 0) return rr;

  // Rank 0: wait until every item is answered (or failed) by some rank.
  wait_for_ranks(opt, name, items, rr.results_path, owner, known, known_errors);

  write_outputs(rr, b, name, items, known, known_errors, opt);
  return rr;
}

BenchReport run_benchmark_file(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                               const data::TileOptions& tiles, Bench b, const std::string& file, RunOptions opt) {
  // Under a launcher (torchrun sets RANK) only rank 0 evaluates: the run is fresh, so ranks cannot share its files.
  if (util::launch_position().rank != 0) return {};
  opt.fresh = true;
  return run_benchmark(model, tok, enc, tiles, b, read_benchmark(b, {file}).items, opt).report;
}

BenchReport run_open_questions(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                               const data::TileOptions& tiles, const std::vector<BenchItem>& items, RunOptions opt) {
  if (util::launch_position().rank != 0) return {};
  const size_t n = opt.limit > 0 ? std::min(items.size(), static_cast<size_t>(opt.limit)) : items.size();
  std::vector<Question> questions;
  for (size_t i = 0; i < n; ++i) {
    auto hint = items[i].extra.find("hint");  // first, as the multiple-choice prompt has it
    const bool has_hint = hint != items[i].extra.end() && !hint->second.empty();
    Question q{items[i].id, "<image>" + (has_hint ? hint->second + "\n" : "") + items[i].question, {}};
    for (const auto& img : items[i].images) q.images.push_back(img.decode());
    questions.push_back(std::move(q));
  }
  GenerationConfig gc;
  gc.num_beams = opt.num_beams;
  gc.max_new_tokens = opt.max_new_tokens > 0 ? opt.max_new_tokens : 16;  // a short phrase naming the item
  const auto answers = answer_questions(model, tok, enc, tiles, questions, gc, opt.batch_size);
  BenchReport r;
  r.benchmark = opt.name;
  r.headline = "accuracy";
  int64_t right = 0;
  for (size_t i = 0; i < n; ++i) {
    ItemResult x;
    x.id = items[i].id, x.category = items[i].category, x.prompt = questions[i].prompt;
    x.response = answers[i].text, x.answered = true, x.answer = items[i].answer;
    if (auto k = option_named(x.response, items[i].options)) x.prediction = std::string(1, static_cast<char>('A' + *k));
    x.correct = x.prediction == x.answer;
    right += *x.correct;
    r.items.push_back(std::move(x));
  }
  r.metrics["n"] = static_cast<double>(n);
  r.metrics["accuracy"] = n ? 100.0 * static_cast<double>(right) / static_cast<double>(n) : 0.0;
  fs::create_directories(opt.out_dir);
  write_results((fs::path(opt.out_dir) / (opt.name + ".json")).string(), r);
  return r;
}

}  // namespace phantom::eval
