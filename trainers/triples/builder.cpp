#include "trainers/triples/builder.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "phantom/util/logf.h"
#include "phantom/util/stop.h"
#include "trainers/triples/prompts.h"
#include "trainers/triples/verify.h"

namespace phantom::triples {
namespace fs = std::filesystem;
using nlohmann::json;

std::string question_of(const data::Sample& s, TripleQuestion& q) {
  q.sample = &s;
  if (s.is_preference()) {
    if (!s.context.empty()) return "multi-turn conversation (a triple holds one question and its answer)";
    q.question = s.question, q.chosen = s.chosen;
    return "";
  }
  if (s.turns.size() != 2) return "multi-turn conversation (a triple holds one question and its answer)";
  q.question = s.turns[0].text, q.chosen = s.turns[1].text;
  return "";
}

std::string BuildReport::text() const {
  auto n = [](int64_t v) { return std::to_string(v); };
  std::string s = "rows in: " + n(rows_in) + (unreadable ? " (+" + n(unreadable) + " unreadable, dropped by the reader)" : "") + "\n";
  if (already_done) s += "already in the output (earlier run): " + n(already_done) + "\n";
  for (auto& [why, c] : rows_dropped) s += "rows without a triple: " + n(c) + " " + why + "\n";
  s += "questions processed: " + n(questions) + "\ntriples out: " + n(triples_out) + " rows, " + n(rejected_out) +
       " rejected answers\n";
  for (auto& [src, c] : candidates) s += "candidates from " + src + ": " + n(c) + "\n";
  if (model_samples)
    s += "model samples: " + n(model_samples) + ", " + n(model_right) + " verified correct (not used); questions " +
         n(always_right) + " always right, " + n(always_wrong) + " always wrong, " + n(mixed) + " mixed\n";
  if (framing_references) {
    std::string words;
    for (const auto& w : framing) words += (words.empty() ? "" : ", ") + w;
    s += "framing words (in >= 15 % of the " + n(framing_references) + " text answers, not compared): " +
         (words.empty() ? "none" : words) + "\n";
  }
  if (drops.empty()) s += "candidates dropped: none\n";
  for (auto& [why, c] : drops) s += "candidates dropped: " + n(c) + " " + why + "\n";
  return s;
}

namespace {

// The image field as the input wrote it, as far as it can be recovered: paths under data.image_root relative to it,
// others absolute (an InternVL meta file's datasets have roots of their own).
json image_field(const data::Sample& s, const std::string& root) {
  json paths = json::array();
  for (const auto& p : s.images) {
    std::string out = p;
    if (!root.empty()) {
      const std::string prefix = (fs::path(root) / "").string();
      if (out.rfind(prefix, 0) == 0) out = out.substr(prefix.size());
    }
    paths.push_back(out);
  }
  if (paths.size() == 1) return paths[0];
  return paths;
}

// Sources already written by an earlier run. A last line cut by a kill is removed, so that the rows appended next
// start on a line of their own; that row is made again.
std::set<std::string> written_sources(const std::string& path) {
  std::set<std::string> done;
  if (!fs::exists(path)) return done;
  std::string text;
  {
    std::ifstream in(path, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (!text.empty() && text.back() != '\n') {
    const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    log::warn("{}: its last line was cut (an interrupted run); that row is made again", path);
    fs::resize_file(path, keep);
    text.resize(keep);
  }
  size_t b = 0;
  int64_t line_no = 0;
  while (b < text.size()) {
    const size_t e = text.find('\n', b);
    ++line_no;
    const std::string line = text.substr(b, e - b);
    b = e + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      done.insert(json::parse(line).at("source").get<std::string>());
    } catch (const json::exception& ex) {
      throw std::runtime_error(path + ":" + std::to_string(line_no) +
                               ": not a row of the triple builder (no \"source\"); write to a new --out file");
    }
  }
  return done;
}

struct Candidate {
  std::string text, source;
};

// The words every answer of the file is written with ("It is a", "The image shows a"), from all its rows: the text
// rule compares what the answers say, not how they are worded (verify.h).
FramingWords file_framing(const std::vector<data::Sample>& samples) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& s : samples) {
    TripleQuestion q;
    if (question_of(s, q).empty()) pairs.emplace_back(q.question, q.chosen);
  }
  return framing_words(pairs);
}

}  // namespace

// One chunk after another: sample the model, ask the endpoint, verify and filter, append.
// long: the order of the filters (which decides which reason a drop is counted under) reads top to bottom.
BuildReport build_triples(const std::vector<data::Sample>& samples, const BuildOptions& opts, ChatEndpoint* endpoint,
                          const ModelSampler& sampler) {
  if (opts.endpoint_k > 0 && !endpoint) throw std::runtime_error("endpoint answers asked for, but no endpoint given");
  if (opts.endpoint_judge && !endpoint) throw std::runtime_error("the endpoint as judge needs an endpoint");
  if (opts.model_k > 0 && !sampler) throw std::runtime_error("model samples asked for, but no model given");
  if (opts.endpoint_k <= 0 && opts.model_k <= 0) throw std::runtime_error("no source of rejected answers: ask for endpoint or model answers");
  BuildReport rep;
  rep.rows_in = static_cast<int64_t>(samples.size());
  const auto done = written_sources(opts.out_path);
  std::vector<TripleQuestion> todo;
  for (const auto& s : samples) {
    if (done.count(s.where)) {
      ++rep.already_done;
      continue;
    }
    TripleQuestion q;
    if (const std::string why = question_of(s, q); !why.empty()) {
      ++rep.rows_dropped[why];
      continue;
    }
    if (opts.limit > 0 && static_cast<int64_t>(todo.size()) >= opts.limit) break;
    todo.push_back(std::move(q));
  }
  const FramingWords framing = file_framing(samples);
  rep.framing_references = framing.text_references;
  rep.framing.assign(framing.words.begin(), framing.words.end());
  std::ofstream out(opts.out_path, std::ios::app | std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + opts.out_path);
  const auto& f = opts.data.fields;
  log::Progress progress("triples", static_cast<int64_t>(todo.size()));
  for (size_t c0 = 0; c0 < todo.size(); c0 += static_cast<size_t>(opts.chunk)) {
    if (util::stop_requested()) throw util::Stopped("triple building stopped by a signal (a rerun resumes)");
    const std::vector<TripleQuestion> chunk(todo.begin() + static_cast<std::ptrdiff_t>(c0),
                                            todo.begin() + static_cast<std::ptrdiff_t>(std::min(todo.size(), c0 + static_cast<size_t>(opts.chunk))));
    std::vector<std::vector<Candidate>> cands(chunk.size());
    // The model's samples: the wrong ones are candidates, the right ones only counted.
    if (opts.model_k > 0) {
      const auto answers = sampler(chunk, opts.model_k);
      for (size_t i = 0; i < chunk.size(); ++i) {
        int64_t right = 0;
        for (const auto& a : answers.at(i)) {
          ++rep.model_samples;
          if (verify_answer(a, chunk[i].chosen, chunk[i].question, &framing).correct) ++right;
          else cands[i].push_back({a, "model"});
        }
        rep.model_right += right;
        if (right == opts.model_k) ++rep.always_right;
        else if (right == 0) ++rep.always_wrong;
        else ++rep.mixed;
      }
    }
    // The endpoint's written wrong answers.
    if (opts.endpoint_k > 0) {
      std::vector<ChatRequest> reqs;
      for (const auto& q : chunk)
        for (int64_t k = 0; k < opts.endpoint_k; ++k)
          reqs.push_back(rejected_answer_request(q.question, q.chosen, k, opts.endpoint_temperature, opts.endpoint_max_tokens));
      const auto replies = endpoint->complete(reqs);
      for (size_t i = 0; i < chunk.size(); ++i)
        for (int64_t k = 0; k < opts.endpoint_k; ++k)
          cands[i].push_back({clean_reply(replies[i * static_cast<size_t>(opts.endpoint_k) + static_cast<size_t>(k)]), "endpoint"});
    }
    // The filters, in order; the survivors of each question in `kept`.
    std::vector<std::vector<Candidate>> kept(chunk.size());
    for (size_t i = 0; i < chunk.size(); ++i) {
      const std::string chosen_norm = normalize_answer(chunk[i].chosen);
      std::set<std::string> seen;
      for (auto& c : cands[i]) {
        ++rep.candidates[c.source];
        const std::string norm = normalize_answer(c.text);
        if (c.text.find_first_not_of(" \t\r\n") == std::string::npos) ++rep.drops["empty"];
        else if (norm == chosen_norm) ++rep.drops["equal to the chosen answer (normalised)"];
        else if (verify_answer(c.text, chunk[i].chosen, chunk[i].question, &framing).correct) ++rep.drops["judged correct (rules)"];
        else if (!seen.insert(norm).second) ++rep.drops["duplicate of another rejected answer"];
        else kept[i].push_back(c);
      }
    }
    if (opts.endpoint_judge) {
      std::vector<ChatRequest> reqs;
      for (size_t i = 0; i < chunk.size(); ++i)
        for (const auto& c : kept[i]) reqs.push_back(judge_request(chunk[i].question, chunk[i].chosen, c.text));
      const auto verdicts = endpoint->complete(reqs);
      size_t v = 0;
      for (auto& ks : kept) {
        std::vector<Candidate> still;
        for (auto& c : ks) {
          if (judge_says_correct(verdicts[v++])) ++rep.drops["judged correct (endpoint)"];
          else still.push_back(std::move(c));
        }
        ks = std::move(still);
      }
    }
    // Append the chunk's rows, in input order.
    std::string text;
    for (size_t i = 0; i < chunk.size(); ++i) {
      ++rep.questions;
      if (kept[i].empty()) {
        ++rep.rows_dropped["no rejected answer left after the filters"];
        continue;
      }
      const data::Sample& s = *chunk[i].sample;
      json row;
      row[f.id] = s.id.empty() ? s.where : s.id;
      if (!s.images.empty()) row[f.image] = image_field(s, opts.data.image_root);
      row[f.question] = chunk[i].question;
      row[f.chosen] = chunk[i].chosen;
      json rejected = json::array(), by = json::array();
      for (const auto& c : kept[i]) rejected.push_back(c.text), by.push_back(c.source);
      row[f.rejected] = rejected;
      row["rejected_by"] = by;
      row["source"] = s.where;
      text += row.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      ++rep.triples_out;
      rep.rejected_out += static_cast<int64_t>(kept[i].size());
    }
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + opts.out_path + " (disk full?)");
    progress.update(rep.questions);
  }
  progress.finish();
  return rep;
}

}  // namespace phantom::triples
