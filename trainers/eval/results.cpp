// Result files: per-benchmark JSON + summary Markdown (atomic), resume, the MMBench upload TSV, judge input files
// in each official script's format, and the external judge hook.
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "phantom/util/atomic_file.h"
#include "phantom/util/logf.h"
#include "trainers/eval/bench_files.h"
#include "trainers/eval/benchmarks.h"
#include "trainers/eval/xlsx.h"

namespace phantom::eval {
namespace fs = std::filesystem;
using files::json;

namespace {

// Generated text can end inside a UTF-8 sequence (generation stops on a token budget): replace invalid bytes
// with U+FFFD instead of failing the dump.
std::string dump(const json& j, int indent = 1) { return j.dump(indent, ' ', false, json::error_handler_t::replace); }

void write_atomic(const std::string& path, const std::string& content) {
  const auto parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  util::write_file_atomic(path, content);
}

const std::string& response_of(const std::map<std::string, std::string>& responses, const std::string& id) {
  static const std::string empty;
  auto it = responses.find(id);
  return it == responses.end() ? empty : it->second;
}

// A TSV field as pandas writes one: quoted when it holds a tab, newline or quote (quotes doubled).
std::string tsv_field(const std::string& s) {
  if (s.find_first_of("\t\n\r\"") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

// ---- results + resume ------------------------------------------------------------------------------------------

void write_results(const std::string& path, const BenchReport& r) {
  json items = json::array();
  for (const auto& x : r.items) {
    json o = {{"id", x.id},         {"category", x.category},     {"prompt", x.prompt},
              {"response", nullptr}, {"answer", x.answer},         {"prediction", x.prediction},
              {"correct", nullptr}};
    if (x.answered) o["response"] = x.response;
    if (x.correct) o["correct"] = *x.correct;
    items.push_back(std::move(o));
  }
  json metrics = json::object();
  for (const auto& [k, v] : r.metrics) metrics[k] = v;
  const json j = {{"benchmark", r.benchmark}, {"headline", r.headline}, {"metrics", metrics},
                  {"missing", r.missing},     {"items", items}};
  write_atomic(path, dump(j) + "\n");
}

std::map<std::string, std::string> read_responses(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return {};
  const json j = files::read_json(path);
  if (!j.is_object() || !j.contains("items") || !j["items"].is_array())
    throw std::runtime_error(path + ": not a results file (no 'items' list)");
  std::map<std::string, std::string> out;
  for (const auto& x : j["items"]) {
    const auto id = files::field(x, "id");
    if (!id) throw std::runtime_error(path + ": an item has no id");
    if (x.contains("response") && x["response"].is_string()) out[*id] = x["response"].get<std::string>();
  }
  return out;
}

std::set<std::string> answered_ids(const std::string& path) {
  std::set<std::string> ids;
  for (const auto& [id, r] : read_responses(path)) ids.insert(id);
  return ids;
}

std::string summary_markdown(const std::vector<BenchReport>& reports) {
  std::string s = "| benchmark | metric | value | items | missing |\n|---|---|---:|---:|---:|\n";
  for (const auto& r : reports) {
    auto n = r.metrics.find("n");
    auto v = r.headline.empty() ? r.metrics.end() : r.metrics.find(r.headline);
    s += fmt::format("| {} | {} | {} | {} | {} |\n", r.benchmark, r.headline.empty() ? "-" : r.headline,
                     v == r.metrics.end() ? std::string("-") : fmt::format("{:.2f}", v->second),
                     n == r.metrics.end() ? int64_t(r.items.size()) : int64_t(n->second), r.missing);
  }
  return s;
}

void write_summary(const std::string& path, const std::vector<BenchReport>& reports) {
  write_atomic(path, "# Evaluation summary\n\n" + summary_markdown(reports));
}

// ---- MMBench upload ----------------------------------------------------------------------------------------------

void write_mmbench_submission(const std::string& path, const std::vector<BenchItem>& items,
                              const std::map<std::string, std::string>& responses) {
  size_t n_opt = 0;
  bool has_answer = false;
  for (const auto& it : items) {
    n_opt = std::max(n_opt, it.options.size());
    has_answer |= !it.answer.empty();
  }
  std::vector<std::vector<std::string>> rows(1, {"index", "question", "hint"});
  for (size_t i = 0; i < n_opt; ++i) rows[0].push_back(std::string(1, char('A' + i)));
  if (has_answer) rows[0].push_back("answer");
  for (const char* c : {"prediction", "category", "l2-category"}) rows[0].push_back(c);
  for (const auto& it : items) {
    auto extra = [&](const char* k) {
      auto e = it.extra.find(k);
      return e == it.extra.end() ? std::string() : e->second;
    };
    const std::string& resp = response_of(responses, it.id);
    // The extracted letter; when none can be read, the raw answer (the server runs its own matching on it).
    const auto k = extract_option(resp, it.options);
    std::vector<std::string> row = {it.id, it.question, extra("hint")};
    for (size_t i = 0; i < n_opt; ++i) row.push_back(i < it.options.size() ? it.options[i] : "");
    if (has_answer) row.push_back(it.answer);
    row.push_back(k ? std::string(1, char('A' + *k)) : files::trim(resp));
    row.push_back(it.category);
    row.push_back(extra("l2-category"));
    rows.push_back(std::move(row));
  }
  if (files::lower(fs::path(path).extension().string()) == ".xlsx") {
    write_xlsx(path, rows);
    return;
  }
  std::string s;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) s += (i ? "\t" : "") + tsv_field(row[i]);
    s += "\n";
  }
  write_atomic(path, s);
}

// ---- judge input files ---------------------------------------------------------------------------------------------

void write_judge_input(Bench b, const std::string& path, const std::vector<BenchItem>& items,
                       const std::map<std::string, std::string>& responses, const std::string& model_id) {
  size_t missing = 0;
  for (const auto& it : items) missing += responses.count(it.id) == 0;
  if (missing) log::warn("{}: {} items have no response; written with an empty one", path, missing);
  switch (b) {
    case Bench::MathVista: {  // extract_answer.py / calculate_score.py: pid -> problem + "response"
      json out = json::object();
      for (const auto& it : items) {
        auto raw = it.extra.find("raw");
        json p = raw != it.extra.end() ? json::parse(raw->second)
                                       : json{{"pid", it.id}, {"query", it.question}, {"answer", it.answer}};
        p["response"] = response_of(responses, it.id);
        out[it.id] = std::move(p);
      }
      write_atomic(path, dump(out) + "\n");
      return;
    }
    case Bench::MathVerse: {  // Phantom's MathVerse results list: the published fields + "model_answer"
      json out = json::array();
      for (const auto& it : items) {
        auto raw = it.extra.find("raw");
        json p = raw != it.extra.end() ? json::parse(raw->second)
                                       : json{{"sample_index", it.id}, {"query_wo", it.question}, {"answer", it.answer}};
        p["model_answer"] = response_of(responses, it.id);
        out.push_back(std::move(p));
      }
      write_atomic(path, dump(out) + "\n");
      return;
    }
    case Bench::MMVet:
    case Bench::MMVet2: {  // the MM-Vet (v2) evaluator: id -> answer
      json out = json::object();
      for (const auto& it : items) out[it.id] = response_of(responses, it.id);
      write_atomic(path, dump(out) + "\n");
      return;
    }
    case Bench::LLaVAW: {  // eval_gpt_review_bench.py: one answer per line, in question order
      std::vector<const BenchItem*> sorted;
      for (const auto& it : items) sorted.push_back(&it);
      // Numeric ids (LLaVA-W's are integers) in numeric order and written as numbers, as questions.jsonl has them.
      auto numeric = [](const std::string& id) -> std::optional<long long> {
        char* end = nullptr;
        const long long v = std::strtoll(id.c_str(), &end, 10);
        if (id.empty() || *end != '\0') return std::nullopt;
        return v;
      };
      std::stable_sort(sorted.begin(), sorted.end(), [&](auto* a, auto* b) {
        const auto na = numeric(a->id), nb = numeric(b->id);
        if (na && nb) return *na < *nb;
        if (na || nb) return bool(na);  // numbers first
        return a->id < b->id;
      });
      std::string s;
      for (const auto* it : sorted) {
        const auto num = numeric(it->id);
        json line = {{"question_id", num ? json(*num) : json(it->id)},
                     {"prompt", it->question},
                     {"text", response_of(responses, it->id)},
                     {"answer_id", model_id + "-" + it->id},
                     {"model_id", model_id},
                     {"metadata", json::object()}};
        s += dump(line, -1) + "\n";
      }
      write_atomic(path, s);
      return;
    }
    default:
      throw std::runtime_error(bench_name(b) + " has no judge input format (it is scored here)");
  }
}

// ---- judge scores ----------------------------------------------------------------------------------------------------

namespace {

void flatten(const json& j, const std::string& prefix, std::map<std::string, double>& out) {
  for (const auto& [k, v] : j.items()) {
    const std::string key = prefix.empty() ? k : prefix + "/" + k;
    if (v.is_number()) out[key] = v.get<double>();
    else if (v.is_object()) flatten(v, key, out);
  }
}

// MM-Vet grade file: id -> {"score": [one per run] | number, ...}. Scores are 0..1; reported as percent.
bool read_mmvet_grades(const json& j, const std::vector<BenchItem>& items, std::map<std::string, double>& out) {
  if (!j.is_object() || j.empty()) return false;
  std::map<std::string, double> per_id;
  for (const auto& [id, v] : j.items()) {
    if (!v.is_object() || !v.contains("score")) return false;
    const json& s = v["score"];
    if (s.is_number()) {
      per_id[id] = s.get<double>();
    } else if (s.is_array() && !s.empty()) {
      double sum = 0;
      for (const auto& x : s) sum += x.is_number() ? x.get<double>() : 0.0;
      per_id[id] = sum / double(s.size());
    } else {
      return false;
    }
  }
  double total = 0;
  for (const auto& [id, s] : per_id) total += s;
  out["total"] = 100.0 * total / double(per_id.size());
  std::map<std::string, std::pair<double, int64_t>> caps;
  for (const auto& it : items) {
    auto s = per_id.find(it.id);
    if (s == per_id.end()) continue;
    std::stringstream ss(it.category);
    for (std::string c; std::getline(ss, c, ',');) {
      auto& [sum, n] = caps[files::trim(c)];
      sum += s->second;
      ++n;
    }
  }
  for (const auto& [c, sn] : caps) out["cap/" + c] = 100.0 * sn.first / double(sn.second);
  return true;
}

// LLaVA-W review JSONL: {"tuple": [reference score, model score], "category": ...} per line. The reported number
// is the model's mean over the reference's mean, in percent, per category and over all ("all").
bool read_llava_reviews(const std::string& text, std::map<std::string, double>& out) {
  std::map<std::string, std::pair<double, double>> sums;
  std::map<std::string, int64_t> counts;
  std::istringstream in(text);
  std::string line;
  bool any = false;
  while (std::getline(in, line)) {
    if (files::trim(line).empty()) continue;
    json r;
    try {
      r = json::parse(line);
    } catch (const json::exception&) {
      return false;
    }
    if (!r.is_object() || !r.contains("tuple") || !r["tuple"].is_array() || r["tuple"].size() != 2) return false;
    const double ref = r["tuple"][0].get<double>(), model = r["tuple"][1].get<double>();
    for (const std::string& k : {std::string("all"), files::field(r, "category").value_or("")}) {
      if (k.empty()) continue;
      sums[k].first += ref;
      sums[k].second += model;
      ++counts[k];
    }
    any = true;
  }
  if (!any) return false;
  for (const auto& [k, s] : sums) {
    out[k] = s.first != 0 ? 100.0 * s.second / s.first : 0.0;
    out[k + "/reference_mean"] = s.first / double(counts[k]);
    out[k + "/model_mean"] = s.second / double(counts[k]);
  }
  return true;
}

}  // namespace

std::map<std::string, double> read_judge_scores(Bench b, const std::string& path,
                                                const std::vector<BenchItem>& items) {
  const std::string text = files::read_text(path);
  std::map<std::string, double> out;
  json j;
  bool is_json = true;
  try {
    j = json::parse(text);
  } catch (const json::exception&) {
    is_json = false;
  }
  if (is_json && (b == Bench::MMVet || b == Bench::MMVet2) && read_mmvet_grades(j, items, out)) return out;
  if (is_json && j.is_object() && !(j.contains("tuple"))) flatten(j, "", out);
  if (out.empty() && !read_llava_reviews(text, out))
    throw std::runtime_error(path + ": judge output has no scores (expected a JSON object of numbers, an MM-Vet "
                                    "grade file or LLaVA review lines)");
  return out;
}

std::map<std::string, double> JudgeCommand::run(Bench b, const std::string& input, const std::string& output,
                                                const std::vector<BenchItem>& items) const {
  if (command.find("{input}") == std::string::npos || command.find("{output}") == std::string::npos)
    throw std::runtime_error("judge command must contain {input} and {output}: " + command);
  std::string cmd = command;
  if (command.find("{data}") != std::string::npos && data.empty())
    throw std::runtime_error("judge command uses {data} but no benchmark file is known: " + command);
  for (const auto& [key, value] : {std::pair{std::string("{input}"), input}, {std::string("{output}"), output},
                                   {std::string("{data}"), data}})
    for (size_t at = cmd.find(key); at != std::string::npos; at = cmd.find(key, at + 1)) {
      const std::string q = shell_quote(value);
      cmd.replace(at, key.size(), q);
      at += q.size() - 1;
    }
  std::error_code ec;
  fs::remove(output, ec);  // never read a previous run's scores
  log::info("judge: {}", cmd);
  const int status = std::system(cmd.c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("judge command failed (" +
                             (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status)) : std::string("killed")) +
                             "): " + cmd);
  if (!fs::exists(output, ec)) throw std::runtime_error("judge command wrote no " + output + ": " + cmd);
  return read_judge_scores(b, output, items);
}

void merge_judge_scores(BenchReport& report, const std::map<std::string, double>& scores) {
  for (const auto& [k, v] : scores) report.metrics["judge/" + k] = v;
  for (const char* k : {"average/accuracy", "total", "all", "overall", "accuracy"})
    if (scores.count(k)) {
      report.headline = std::string("judge/") + k;
      return;
    }
}

}  // namespace phantom::eval
