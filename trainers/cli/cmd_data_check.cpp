// phantom data check --config F [--samples N] [--file F [--format X]] [--threads N] [key=value ...]
// Every file the recipe reads, in the format its stage reads it: samples rendered with their supervised tokens
// marked (rejected answers too), token counts after image expansion, a length histogram, every bad row with its
// file and line, and the rows worth a look. The rows are checked on every core (images decoded and tiled,
// samples encoded, as the trainer does); the report is printed in file order.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "data/collate.h"
#include "data/format_guess.h"
#include "data/loader.h"
#include "trainers/cli/commands.h"
#include "trainers/cli/data_setup.h"
#include "trainers/cli/flags.h"
#include "trainers/triples/verify.h"

namespace phantom::cli {

namespace {

// One annotation file as the recipe reads it: its path, its format, the key that picks the format, who reads it.
struct RecipeFile {
  std::string path, format, format_key, readers;
};

// The stages' files (each once per format), then the validation file; or the --file alone.
std::vector<RecipeFile> recipe_files(const recipe::RunConfig& cfg, const Args& a) {
  if (a.has("file")) return {{a.get("file"), a.get("format", cfg.data.format), a.has("format") ? "--format" : "data.format", "--file"}};
  if (a.has("format")) throw UsageError("--format picks the format of --file; the recipe's files use their stages' formats");
  std::vector<RecipeFile> files;
  for (size_t i = 0; i < cfg.stages.size(); ++i) {
    const auto& st = cfg.stages[i];
    RecipeFile f{st.data.empty() ? cfg.data.train : st.data, st.format.empty() ? cfg.data.format : st.format,
                 st.format.empty() ? "data.format" : "stages." + std::to_string(i) + ".format", ""};
    const std::string who = "stage " + std::to_string(i) + " (" + st.name + ")";
    auto same = std::find_if(files.begin(), files.end(), [&](const RecipeFile& g) { return g.path == f.path && g.format == f.format; });
    if (same != files.end()) same->readers += ", " + who;
    else f.readers = who, files.push_back(f);
  }
  // Validation: a stage's own file in its format, data.val (in data.format) for the stages without one.
  bool shared_val = false;
  for (size_t i = 0; i < cfg.stages.size(); ++i) {
    const auto& st = cfg.stages[i];
    if (st.val.empty()) {
      shared_val = true;
      continue;
    }
    const std::string fmt = st.format.empty() ? cfg.data.format : st.format;
    const std::string who = "validation of stage " + std::to_string(i) + " (" + st.name + ")";
    auto same = std::find_if(files.begin(), files.end(), [&](const RecipeFile& g) { return g.path == st.val && g.format == fmt; });
    if (same != files.end()) same->readers += ", " + who;
    else files.push_back({st.val, fmt, st.format.empty() ? "data.format" : "stages." + std::to_string(i) + ".format", who});
  }
  if (shared_val && !cfg.data.val.empty()) files.push_back({cfg.data.val, cfg.data.format, "data.format", "validation (data.val)"});
  return files;
}

// Text of ids with runs of <IMG_CONTEXT> collapsed and supervised spans marked.
std::string render(const data::Tokenizer& tok, const std::vector<int32_t>& ids, const std::vector<int32_t>& labels,
                   int32_t ctx_id) {
  std::string out;
  size_t i = 0;
  while (i < ids.size()) {
    if (ids[i] == ctx_id) {
      size_t k = i;
      while (k < ids.size() && ids[k] == ctx_id) ++k;
      out += "<IMG_CONTEXT>x" + std::to_string(k - i);
      i = k;
      continue;
    }
    const bool sup = labels[i] != data::kIgnore;
    size_t j = i;
    while (j < ids.size() && ids[j] != ctx_id && (labels[j] != data::kIgnore) == sup) ++j;
    const std::string text = tok.decode(std::vector<int32_t>(ids.begin() + static_cast<long>(i), ids.begin() + static_cast<long>(j)));
    out += sup ? "[[" + text + "]]" : text;
    i = j;
  }
  return out;
}

// What checking one row found.
struct RowCheck {
  int64_t tokens = -1;                                   // -1: unreadable
  std::string rendered;                                  // only for the rows shown
  std::vector<std::pair<std::string, std::string>> bad;  // (reason, full message): the row is wrong
  std::vector<std::pair<std::string, std::string>> flags;  // (reason, full message): worth a look
};

RowCheck check_row(const DataSetup& d, const data::Sample& s, bool show) {
  RowCheck r;
  const auto& enc = *d.enc;
  const int32_t ctx = enc.image_tokens().img_context;
  std::vector<int64_t> counts;
  for (auto& p : s.images) counts.push_back(data::preprocess_image(data::load_image(p), d.tiles).size(0));
  if (!s.is_preference()) {
    const auto c = enc.conversation(s, counts);
    r.tokens = static_cast<int64_t>(c.ids.size());
    if (show) r.rendered = render(*d.tok, c.ids, c.labels, ctx);
  } else {
    const auto p = enc.preference(s, counts);
    r.tokens = p.row_length(d.cfg.shared_prefix);  // the PO row the trainer builds
    const auto chosen = data::chosen_as_conversation(p);
    if (show) {
      r.rendered = render(*d.tok, chosen.ids, chosen.labels, ctx);
      for (size_t k = 1; k < p.answers.size(); ++k) r.rendered += "\n  rejected " + std::to_string(k) + ": [[" + d.tok->decode(p.answers[k]) + "]]";
    }
    // The shared-prefix layout (one prompt, every answer after it) needs the same prompt ids before every answer.
    // In-context tokenisation can merge the prompt's last characters with an answer's first ones differently per
    // answer; the trainer then lays that question out one row per answer (counted), so this is a flag, not an error.
    if (!p.shared())
      r.flags.push_back({"prompt differs between answers",
                         "the answers leave different prompt ids (one row per answer instead of a shared prefix)"});
    const std::string chosen_norm = triples::normalize_answer(s.chosen);
    const auto n_chosen = static_cast<double>(p.answers[0].size());
    for (size_t k = 0; k < s.rejected.size(); ++k) {
      const std::string& rej = s.rejected[k];
      const std::string which = "rejected answer " + std::to_string(k + 1);
      if (triples::normalize_answer(rej) == chosen_norm)
        r.bad.push_back({"rejected equal to chosen", which + " equals the chosen answer after normalisation: \"" + rej + "\""});
      // Much longer or shorter: 4x the tokens either way and at least 16 tokens apart (a letter against "B. dog"
      // is not flagged; a sentence against a paragraph is). PO's length-normalised reward then mostly sees length.
      const auto n_rej = static_cast<double>(p.answers[k + 1].size());
      const double hi = std::max(n_rej, n_chosen), lo = std::min(n_rej, n_chosen);
      if (hi >= 4 * lo && hi - lo >= 16)
        r.flags.push_back({n_rej > n_chosen ? "rejected much longer than chosen" : "rejected much shorter than chosen",
                           which + ": " + std::to_string(static_cast<int64_t>(n_rej)) + " tokens, the chosen one " +
                               std::to_string(static_cast<int64_t>(n_chosen))});
    }
  }
  if (r.tokens > d.cfg.data.max_length)
    r.bad.push_back({"over-length sample", "over-length sample (" + std::to_string(r.tokens) +
                                               " tokens after image expansion > data.max_length " +
                                               std::to_string(d.cfg.data.max_length) + ")"});
  return r;
}

// Checks every row of `samples` on `threads` threads; results in row order.
std::vector<RowCheck> check_rows(const DataSetup& d, const std::vector<data::Sample>& samples, int64_t show, int64_t threads) {
  std::vector<RowCheck> out(samples.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    data::single_threaded_worker();  // parallel over rows, not inside one row's torch ops
    for (size_t i; (i = next++) < samples.size();) {
      try {
        out[i] = check_row(d, samples[i], static_cast<int64_t>(i) < show);
      } catch (const std::exception& e) {
        std::string msg = e.what();
        out[i].tokens = -1;
        out[i].bad.push_back({"unreadable sample", msg.substr(0, msg.find('\n'))});
      }
    }
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return out;
}

// The report of one file; returns its number of bad rows.
int64_t check_file(const DataSetup& d, const RecipeFile& f, int64_t show, int64_t threads) {
  std::printf("=== %s: %s (format %s, from %s) ===\n", f.readers.c_str(), f.path.c_str(), f.format.c_str(), f.format_key.c_str());
  data::DataConfig dc = d.cfg.data;
  dc.format = f.format;
  dc.on_error = "skip";  // collect every problem
  data::SkipCounts bad, flags;
  const auto t0 = std::chrono::steady_clock::now();
  const auto samples = data::read_annotations(f.path, dc, bad, static_cast<uint64_t>(d.cfg.run.seed));
  const std::string hint = data::format_mismatch_hint(f.path, dc, f.format_key);
  if (!hint.empty()) std::printf("warning: %s\n", hint.c_str());
  const auto rows = check_rows(d, samples, show, threads);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::map<int64_t, int64_t> histogram;  // bucket upper bound -> count
  int64_t total_tokens = 0, longest = 0, counted = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const auto& where = samples[i].where;
    if (!r.rendered.empty())
      std::printf("--- sample %zu (%s), %lld tokens ---\n%s\n", i, where.c_str(), static_cast<long long>(r.tokens), r.rendered.c_str());
    for (auto& [why, full] : r.bad) bad.add(why, "data error at " + where + ": " + full);
    for (auto& [why, full] : r.flags) flags.add(why, where + ": " + full);
    if (r.tokens < 0) continue;
    int64_t bucket = 16;
    while (bucket < r.tokens) bucket *= 2;
    ++histogram[bucket];
    total_tokens += r.tokens, longest = std::max(longest, r.tokens), ++counted;
  }
  std::printf("\n%lld samples read from %s, %lld tokens after image expansion (mean %.1f, max %lld); checked in %.2f s on %lld threads\nlength histogram:\n",
              static_cast<long long>(counted), f.path.c_str(), static_cast<long long>(total_tokens),
              counted ? static_cast<double>(total_tokens) / static_cast<double>(counted) : 0.0, static_cast<long long>(longest),
              dt, static_cast<long long>(threads));
  for (auto& [b, n] : histogram)
    std::printf("  <= %6lld tokens: %8lld %s\n", static_cast<long long>(b), static_cast<long long>(n),
                std::string(static_cast<size_t>(std::min<int64_t>(60, 60 * n / std::max<int64_t>(1, counted))), '#').c_str());
  auto list = [](const char* title, const data::SkipCounts& c) {
    std::printf("%s: %s\n", title, c.by_reason.empty() ? "none" : c.summary().substr(c.summary().find(':') + 2).c_str());
    for (auto& e : c.examples) std::printf("  %s\n", e.c_str());
    if (static_cast<int64_t>(c.examples.size()) < c.total())  // SkipCounts keeps the first ones only
      std::printf("  ... list cut: %zu of %lld problems shown (the counts above cover all of them)\n", c.examples.size(),
                  static_cast<long long>(c.total()));
  };
  list("bad rows", bad);
  list("flagged rows (kept, worth a look)", flags);
  if (!hint.empty() && bad.total()) std::printf("hint: %s\n", hint.c_str());
  std::printf("\n");
  return bad.total();
}

}  // namespace

int data_check(const Args& a) {
  DataSetup d(a);
  const int64_t show = int_flag(a, "samples", 3, 0);
  int64_t threads = a.has("threads") ? threads_flag(a) : d.cfg.run.threads;
  if (threads <= 0) threads = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const bool interleaved = d.enc->multi_image() == "interleaved";
  std::printf("image placement: %s, images %s (%s, as \"%s\" + text; data.image_placement, data.multi_image)\n",
              d.enc->image_placement().c_str(), d.enc->multi_image().c_str(),
              interleaved ? "each <image> where written; a turn's leading ones and unplaced images first"
                          : "every image first in the first user turn",
              d.enc->image_placement() == "prepend" ? "<image>" : "<image>\\n");
  int64_t bad = 0;
  const auto files = recipe_files(d.cfg, a);
  for (const auto& f : files) bad += check_file(d, f, show, threads);
  std::printf("%s\n", d.enc->counts_summary().c_str());  // answer boundary cases over every file
  std::printf("%zu file(s) checked, %lld bad row(s)\n", files.size(), static_cast<long long>(bad));
  return bad ? 1 : 0;
}

}  // namespace phantom::cli
