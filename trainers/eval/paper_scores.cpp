// The paper's headline numbers and the comparison table of `phantom eval --summary` (paper_scores.h).
#include "trainers/eval/paper_scores.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "trainers/eval/bench_files.h"

namespace phantom::eval {
namespace fs = std::filesystem;

const std::vector<PaperColumn>& paper_columns() {
  // MMB / MMB-CN are compared with the dev split's accuracy: the test split is scored by the OpenCompass server
  // (upload <name>_submission.xlsx); POPE is the mean accuracy over the splits read.
  static const std::vector<PaperColumn> c = {
      {"SQA-IMG", "sqa", "accuracy"},
      {"AI2D", "ai2d", "accuracy"},
      {"ChartQA", "chartqa", "relaxed_accuracy"},
      {"SEED-IMG", "seed", "accuracy"},
      {"POPE", "pope", "accuracy"},
      {"HallB", "hallusionbench", "question_accuracy"},
      {"MME", "mme", "total"},
      {"MathVista", "mathvista", "judge/average/accuracy"},
      {"MMB", "mmbench_dev", "accuracy"},
      {"MMB-CN", "mmbench_cn_dev", "accuracy"},
      {"MM-Vet", "mmvet", "judge/total"},
      {"LLaVA-W", "llavaw", "judge/all"},
      {"MMStar", "mmstar", "accuracy", false},
      {"MathVerse", "mathverse", "judge/total", false},
      {"SEED-2-Plus", "seed2plus", "accuracy", false},
      {"CV-Bench", "cvbench", "cvbench_accuracy", false},
      {"MM-Vet-v2", "mmvet2", "judge/total", false},
      {"VisualWebBench", "visualwebbench", "average", false},
      {"BLINK", "blink", "subtask_mean", false},
  };
  return c;
}

const std::vector<PaperRow>& paper_rows() {
  // Lee et al. 2024 (arXiv:2409.14713), main results table; MME is perception + cognition (of 2800).
  static const std::vector<PaperRow> rows = [] {
    const std::vector<std::pair<std::string, std::vector<double>>> t = {
        {"0.5b", {83.2, 54.1, 78.0, 60.6, 86.0, 54.6, 1743, 51.7, 72.7, 70.1, 45.7, 69.6}},
        {"1.8b", {91.9, 62.3, 87.0, 68.6, 89.6, 62.2, 1885, 60.9, 76.6, 75.1, 54.1, 68.6}},
        {"3.8b", {94.2, 71.7, 87.3, 72.8, 87.1, 60.8, 2046, 60.6, 80.4, 77.1, 54.4, 76.2}},
        {"7b", {95.6, 79.5, 87.8, 75.3, 87.7, 65.4, 2126, 70.9, 84.8, 84.7, 70.8, 84.9}},
    };
    std::vector<PaperRow> out;
    for (const auto& [size, v] : t) {
      PaperRow r{size, "Phantom-" + size.substr(0, size.size() - 1) + "B", {}};
      for (size_t i = 0; i < paper_columns().size(); ++i)
        r.values.push_back(i < v.size() ? std::optional<double>(v[i]) : std::nullopt);
      out.push_back(std::move(r));
    }
    return out;
  }();
  return rows;
}

const PaperRow& paper_row(const std::string& size) {
  std::string s = files::lower(files::trim(size));
  if (s.rfind("phantom-", 0) == 0) s = s.substr(8);
  for (const auto& r : paper_rows())
    if (r.size == s) return r;
  throw std::runtime_error("unknown Phantom size '" + size + "' (known: 0.5b, 1.8b, 3.8b, 7b)");
}

std::vector<std::optional<double>> results_for_columns(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": not a results directory");
  std::vector<std::optional<double>> out;
  for (const auto& c : paper_columns()) {
    const fs::path f = fs::path(dir) / (c.results + ".json");
    std::optional<double> v;
    if (fs::exists(f, ec)) {
      const auto j = files::read_json(f.string());
      if (!j.is_object() || !j.contains("metrics") || !j["metrics"].is_object())
        throw std::runtime_error(f.string() + ": not a results file (no 'metrics' object)");
      if (j["metrics"].contains(c.metric) && j["metrics"][c.metric].is_number())
        v = j["metrics"][c.metric].get<double>();
    }
    out.push_back(v);
  }
  return out;
}

namespace {
std::string cell(const std::optional<double>& v, bool sum, bool signed_) {
  if (!v) return "-";
  return sum ? fmt::format(signed_ ? "{:+.0f}" : "{:.0f}", *v) : fmt::format(signed_ ? "{:+.1f}" : "{:.1f}", *v);
}
}  // namespace

std::string comparison_markdown(const std::vector<std::string>& dirs, const std::string& size) {
  const auto& cols = paper_columns();
  std::vector<const PaperRow*> paper;
  if (size.empty())
    for (const auto& r : paper_rows()) paper.push_back(&r);
  else
    paper.push_back(&paper_row(size));
  std::string s = "| |";
  std::string rule = "|---|";
  for (const auto& c : cols) s += " " + c.title + (c.in_paper ? "" : "*") + " |", rule += "---:|";
  s += "\n" + rule + "\n";
  auto row = [&](const std::string& label, const std::vector<std::optional<double>>& v, bool signed_) {
    s += "| " + label + " |";
    for (size_t i = 0; i < cols.size(); ++i) s += " " + cell(v[i], cols[i].title == "MME", signed_) + " |";
    s += "\n";
  };
  for (const auto* p : paper) row(p->model + " (paper)", p->values, false);
  for (const auto& d : dirs) {
    const auto ours = results_for_columns(d);
    row(d, ours, false);
    if (size.empty()) continue;
    std::vector<std::optional<double>> diff;
    for (size_t i = 0; i < cols.size(); ++i)
      diff.push_back(ours[i] && paper[0]->values[i] ? std::optional<double>(*ours[i] - *paper[0]->values[i])
                                                    : std::nullopt);
    row("difference", diff, true);
  }
  return s;
}

}  // namespace phantom::eval
