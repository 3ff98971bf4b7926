// Scorers: option-letter extraction and accuracy (SQA, AI2D, SEED, MMBench, MMStar), ChartQA relaxed accuracy,
// POPE, MME, HallusionBench. Normalisation rules follow the official scripts Phantom used (docs/evaluation.md).
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <regex>

#include "phantom/util/logf.h"
#include "trainers/eval/bench_files.h"
#include "trainers/eval/benchmarks.h"

namespace phantom::eval {
using files::lower;
using files::trim;
using files::json;

// ---- option letters --------------------------------------------------------------------------------------------

namespace {

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// `needle` occurs in `hay` with no letter or digit right before or after it.
bool contains_word(const std::string& hay, const std::string& needle) {
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) {
    const bool left = at == 0 || !word_char(hay[at - 1]);
    const size_t end = at + needle.size();
    const bool right = end >= hay.size() || !word_char(hay[end]);
    if (left && right) return true;
  }
  return false;
}

// Lower-cased, trimmed, without trailing sentence punctuation: how option texts and answers are compared.
std::string norm_text(const std::string& s) {
  std::string t = lower(trim(s));
  while (!t.empty() && (t.back() == '.' || t.back() == '!' || t.back() == ',' || t.back() == ';')) t.pop_back();
  return trim(t);
}

}  // namespace

std::optional<int> extract_option(const std::string& response, const std::vector<std::string>& options) {
  // Without known option texts (an MMStar row whose options we could not parse) letters A-E are allowed.
  const int n = options.empty() ? 5 : int(std::min<size_t>(options.size(), 26));
  auto valid = [&](char c) { return c >= 'A' && c < char('A' + n); };
  const std::string s = trim(response);
  if (s.empty()) return std::nullopt;

  // 1. The whole answer is a letter, perhaps wrapped or punctuated: "B", "B.", "(B)", "[B]", "B)", "b".
  {
    size_t b = 0, e = s.size();
    while (b < e && (s[b] == '(' || s[b] == '[' || std::isspace(static_cast<unsigned char>(s[b])))) ++b;
    while (e > b && (std::strchr(")].:,;!", s[e - 1]) || std::isspace(static_cast<unsigned char>(s[e - 1])))) --e;
    const char c = char(std::toupper(static_cast<unsigned char>(s[b < s.size() ? b : 0])));
    if (e - b == 1 && valid(c)) return c - 'A';
  }
  // 2. A letter opening the answer, then a delimiter and more text: "B. cat", "(B) cat", "B) cat", "B: cat".
  static const std::regex lead(R"(^[\(\[]?([A-Z])(?:[\)\]][.:]?|[.:,])(?:\s|$))");
  std::smatch m;
  if (std::regex_search(s, m, lead) && valid(m[1].str()[0])) return m[1].str()[0] - 'A';
  // 3. The letter stated: "The answer is B", "answer is (C).", "Answer: D", "option B", "choice (A)".
  static const std::regex stated(R"((?:[Aa]nswer|[Oo]ption|[Cc]hoice)(?:\s+is)?\s*:?\s*[\(\[]?([A-Z])(?![A-Za-z0-9]))");
  for (auto it = std::sregex_iterator(s.begin(), s.end(), stated); it != std::sregex_iterator(); ++it)
    if (valid((*it)[1].str()[0])) return (*it)[1].str()[0] - 'A';
  // 4. The text of an option: equal to one, else contained (as whole words) in the answer. An option contained
  //    only because a longer matching option contains it ("red" in "red apple") does not count.
  const std::string ns = norm_text(s);
  std::vector<int> hits;
  for (int i = 0; i < n && i < int(options.size()); ++i) {
    const std::string o = norm_text(options[i]);
    if (o.empty()) continue;
    if (o == ns) return i;
    if (contains_word(ns, o)) hits.push_back(i);
  }
  std::vector<int> kept;
  for (int i : hits) {
    bool inside_other = false;
    for (int j : hits)
      if (j != i && norm_text(options[j]).size() > norm_text(options[i]).size() &&
          contains_word(norm_text(options[j]), norm_text(options[i])))
        inside_other = true;
    if (!inside_other) kept.push_back(i);
  }
  if (kept.size() == 1) return kept[0];
  // 5. One distinct stand-alone capital letter in range ("I think D"). "A"/"I" followed by a lower-case word
  //    are the article and the pronoun, not options.
  std::optional<int> found;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!valid(s[i]) || (i > 0 && word_char(s[i - 1])) || (i + 1 < s.size() && word_char(s[i + 1]))) continue;
    if ((s[i] == 'A' || s[i] == 'I') && i + 2 < s.size() && s[i + 1] == ' ' &&
        std::islower(static_cast<unsigned char>(s[i + 2])))
      continue;
    const int k = s[i] - 'A';
    if (found && *found != k) return std::nullopt;  // two different letters: ambiguous
    found = k;
  }
  return found;
}


std::optional<int> option_named(const std::string& response, const std::vector<std::string>& options) {
  const std::string answer = lower(response);
  std::optional<int> best;
  size_t best_len = 0;
  for (size_t i = 0; i < options.size(); ++i) {
    const std::string o = lower(options[i]);
    if (!o.empty() && o.size() > best_len && answer.find(o) != std::string::npos) best = static_cast<int>(i), best_len = o.size();
  }
  return best;
}

// ---- ChartQA ---------------------------------------------------------------------------------------------------

namespace {
// A number as Python's float() reads it after ChartQA strips '%' (no thousands separators, no units).
std::optional<double> chart_number(std::string s) {
  s = trim(s);
  while (!s.empty() && s.back() == '%') s.pop_back();
  s = trim(s);
  static const std::regex num(R"(^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$)");
  if (!std::regex_match(s, num)) return std::nullopt;
  return std::strtod(s.c_str(), nullptr);
}
}  // namespace

bool relaxed_correct(const std::string& prediction, const std::string& target, double tolerance) {
  const auto p = chart_number(prediction), t = chart_number(target);
  // Relative to the target, as the ChartQA paper defines it; a zero target falls back to the string comparison.
  if (p && t && *t != 0.0) return std::abs(*p - *t) / std::abs(*t) <= tolerance;
  return lower(trim(prediction)) == lower(trim(target));
}

std::string chartqa_postprocess(const std::string& response) {
  const std::string s = trim(response);
  for (char c : s)
    if (std::isdigit(static_cast<unsigned char>(c))) return s.substr(0, s.find(' '));
  return s;
}

// ---- yes/no normalisations --------------------------------------------------------------------------------------

std::string pope_normalize(const std::string& response) {
  std::string t = lower(trim(response));
  if (auto dot = t.find('.'); dot != std::string::npos) t = t.substr(0, dot);  // first sentence only
  std::string no_commas;
  for (char c : t)
    if (c != ',') no_commas += c;
  // Words are split on single spaces, exactly as the official script's str.split(' ').
  size_t b = 0;
  while (b <= no_commas.size()) {
    size_t e = no_commas.find(' ', b);
    if (e == std::string::npos) e = no_commas.size();
    const std::string w = no_commas.substr(b, e - b);
    if (w == "no" || w == "not") return "no";
    b = e + 1;
  }
  return "yes";
}

std::string mme_normalize(const std::string& response) {
  const std::string t = lower(trim(response));
  if (t == "yes" || t == "no") return t;
  const std::string prefix = t.substr(0, 4);
  if (prefix.find("yes") != std::string::npos) return "yes";
  if (prefix.find("no") != std::string::npos) return "no";
  return "other";
}

std::string hallusion_normalize(const std::string& response) {
  return lower(response).find("yes") != std::string::npos ? "yes" : "no";
}

const std::vector<std::string>& mme_perception_categories() {
  static const std::vector<std::string> v = {"existence", "count",     "position", "color",    "posters",
                                             "celebrity", "scene",     "landmark", "artwork",  "OCR"};
  return v;
}
const std::vector<std::string>& mme_cognition_categories() {
  static const std::vector<std::string> v = {"commonsense_reasoning", "numerical_calculation", "text_translation",
                                             "code_reasoning"};
  return v;
}

// ---- per-benchmark scoring ----------------------------------------------------------------------------------------

namespace {

double pct(int64_t k, int64_t n) { return n ? 100.0 * double(k) / double(n) : 0.0; }

struct Tally {
  int64_t n = 0, correct = 0;
  void add(bool ok) { ++n, correct += ok; }
  double percent() const { return pct(correct, n); }
};

// Items with their responses, prompts and answers filled in; `prediction`/`correct` are left to the scorer.
BenchReport start_report(Bench b, const std::string& name, const std::vector<BenchItem>& items,
                         const std::map<std::string, std::string>& responses) {
  BenchReport r;
  r.benchmark = name;
  for (const auto& it : items) {
    ItemResult x;
    x.id = it.id;
    x.category = it.category;
    x.prompt = build_prompt(b, it).text;
    x.answer = it.answer;
    auto resp = responses.find(it.id);
    if (resp == responses.end()) ++r.missing;
    else x.response = resp->second, x.answered = true;
    r.items.push_back(std::move(x));
  }
  r.metrics["n"] = double(items.size());
  r.metrics["missing"] = double(r.missing);
  if (r.missing) log::warn("{}: {} of {} items have no response; they count as wrong", name, r.missing, items.size());
  return r;
}

// Overall and per-category accuracy of the items that have a correctness.
void add_accuracy(BenchReport& r, const std::string& key = "accuracy") {
  Tally all;
  std::map<std::string, Tally> by_cat;
  for (const auto& x : r.items) {
    if (!x.correct) continue;
    all.add(*x.correct);
    if (!x.category.empty()) by_cat[x.category].add(*x.correct);
  }
  if (all.n == 0) return;
  r.metrics[key] = all.percent();
  for (const auto& [cat, t] : by_cat) r.metrics[key + "/" + cat] = t.percent();
  if (r.headline.empty()) r.headline = key;
}

BenchReport score_choice(Bench b, const std::string& name, const std::vector<BenchItem>& items,
                         const std::map<std::string, std::string>& responses) {
  BenchReport r = start_report(b, name, items, responses);
  for (size_t i = 0; i < items.size(); ++i) {
    auto& x = r.items[i];
    if (auto k = extract_option(x.response, items[i].options)) x.prediction = std::string(1, char('A' + *k));
    if (!x.answer.empty()) x.correct = x.prediction == x.answer;
  }
  add_accuracy(r);
  // MMBench's circular copies of a question carry index + k * 1e6; CircularEval counts a question as right only
  // when every copy is. Reported when such copies are present.
  if (b == Bench::MMBench) {
    std::map<int64_t, std::pair<bool, int>> groups;
    bool circular = false;
    for (const auto& x : r.items) {
      if (!x.correct) continue;
      char* end = nullptr;
      const long long idx = std::strtoll(x.id.c_str(), &end, 10);
      if (*end != '\0') continue;
      circular |= idx >= 1000000;
      auto& g = groups.try_emplace(idx % 1000000, true, 0).first->second;
      g.first = g.first && *x.correct;
      ++g.second;
    }
    if (circular) {
      int64_t ok = 0;
      for (const auto& [k, g] : groups) ok += g.first;
      r.metrics["circular_accuracy"] = pct(ok, int64_t(groups.size()));
    }
  }
  return r;
}

BenchReport score_pope(const std::string& name, const std::vector<BenchItem>& items,
                       const std::map<std::string, std::string>& responses) {
  BenchReport r = start_report(Bench::POPE, name, items, responses);
  struct Confusion {
    int64_t tp = 0, fp = 0, tn = 0, fn = 0, n = 0, yes = 0;
  };
  std::map<std::string, Confusion> by_split;
  for (size_t i = 0; i < items.size(); ++i) {
    auto& x = r.items[i];
    auto& c = by_split[x.category];
    ++c.n;
    const bool answered = x.answered;
    x.prediction = answered ? pope_normalize(x.response) : "";
    x.correct = x.prediction == x.answer;
    if (!answered) continue;  // neither yes nor no: wrong, outside the confusion matrix
    const bool pred_yes = x.prediction == "yes", gt_yes = x.answer == "yes";
    c.yes += pred_yes;
    (pred_yes ? (gt_yes ? c.tp : c.fp) : (gt_yes ? c.fn : c.tn))++;
  }
  double acc_sum = 0, f1_sum = 0;
  for (const auto& [split, c] : by_split) {
    const double precision = c.tp + c.fp ? double(c.tp) / double(c.tp + c.fp) : 0.0;
    const double recall = c.tp + c.fn ? double(c.tp) / double(c.tp + c.fn) : 0.0;
    const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
    const double acc = pct(c.tp + c.tn, c.n);
    r.metrics[split + "/accuracy"] = acc;
    r.metrics[split + "/precision"] = 100 * precision;
    r.metrics[split + "/recall"] = 100 * recall;
    r.metrics[split + "/f1"] = 100 * f1;
    r.metrics[split + "/yes_ratio"] = pct(c.yes, c.n);
    r.metrics[split + "/n"] = double(c.n);
    acc_sum += acc;
    f1_sum += 100 * f1;
  }
  if (!by_split.empty()) {
    // The paper's single POPE number: the mean over the splits read (random, popular, adversarial).
    r.metrics["accuracy"] = acc_sum / double(by_split.size());
    r.metrics["f1"] = f1_sum / double(by_split.size());
    r.headline = "accuracy";
  }
  return r;
}

BenchReport score_mme(const std::string& name, const std::vector<BenchItem>& items,
                      const std::map<std::string, std::string>& responses) {
  BenchReport r = start_report(Bench::MME, name, items, responses);
  std::map<std::string, Tally> questions;                          // per category
  std::map<std::string, std::map<std::string, Tally>> per_image;   // category -> image -> its questions
  for (size_t i = 0; i < items.size(); ++i) {
    auto& x = r.items[i];
    x.prediction = x.answered ? mme_normalize(x.response) : "other";
    x.correct = x.prediction == x.answer;
    questions[x.category].add(*x.correct);
    auto img = items[i].extra.find("image");
    per_image[x.category][img == items[i].extra.end() ? x.id : img->second].add(*x.correct);
  }
  auto category_score = [&](const std::string& cat) -> double {
    auto q = questions.find(cat);
    if (q == questions.end()) return 0.0;
    int64_t both = 0;
    for (const auto& [img, t] : per_image[cat]) both += t.correct == t.n;  // acc+: every question of the image
    const double acc = q->second.percent(), acc_plus = pct(both, int64_t(per_image[cat].size()));
    r.metrics[cat + "/acc"] = acc;
    r.metrics[cat + "/acc_plus"] = acc_plus;
    r.metrics[cat + "/score"] = acc + acc_plus;
    return acc + acc_plus;
  };
  double perception = 0, cognition = 0;
  for (const auto& c : mme_perception_categories()) perception += category_score(c);
  for (const auto& c : mme_cognition_categories()) cognition += category_score(c);
  r.metrics["perception"] = perception;
  r.metrics["cognition"] = cognition;
  r.metrics["total"] = perception + cognition;
  r.headline = "total";
  return r;
}

BenchReport score_hallusion(const std::string& name, const std::vector<BenchItem>& items,
                            const std::map<std::string, std::string>& responses) {
  BenchReport r = start_report(Bench::HallusionBench, name, items, responses);
  std::map<std::string, Tally> figures, pairs;
  for (size_t i = 0; i < items.size(); ++i) {
    auto& x = r.items[i];
    const auto& e = items[i].extra;
    auto get = [&](const char* k) {
      auto it = e.find(k);
      return it == e.end() ? std::string() : it->second;
    };
    x.prediction = x.answered ? hallusion_normalize(x.response) : "";
    x.correct = x.prediction == x.answer;
    const std::string base = get("category") + "_" + get("subcategory") + "_" + get("set_id");
    // Figure accuracy: all questions about one figure right; VS questions without a figure are not a figure.
    if (!(get("category") == "VS" && get("figure_id") == "0")) figures[base + "_" + get("figure_id")].add(*x.correct);
    // Question-pair accuracy: one question right on every figure of its set.
    pairs[base + "_" + get("question_id")].add(*x.correct);
  }
  add_accuracy(r, "question_accuracy");
  auto all_right = [](const std::map<std::string, Tally>& groups) {
    int64_t ok = 0;
    for (const auto& [k, t] : groups) ok += t.correct == t.n;
    return pct(ok, int64_t(groups.size()));
  };
  if (!figures.empty()) r.metrics["figure_accuracy"] = all_right(figures);
  if (!pairs.empty()) r.metrics["pair_accuracy"] = all_right(pairs);
  return r;
}

BenchReport score_chartqa(const std::string& name, const std::vector<BenchItem>& items,
                          const std::map<std::string, std::string>& responses) {
  BenchReport r = start_report(Bench::ChartQA, name, items, responses);
  for (auto& x : r.items) {
    x.prediction = chartqa_postprocess(x.response);
    x.correct = x.answered && relaxed_correct(x.prediction, x.answer);
  }
  add_accuracy(r, "relaxed_accuracy");  // per category = per split (human, augmented)
  return r;
}

// CV-Bench's score (as its authors and Phantom compute it): accuracy per source, 2D = mean of ADE20K and COCO,
// 3D = Omni3D, overall = mean of 2D and 3D. Sources absent from the file are left out of the means.
BenchReport score_cvbench(const std::string& name, const std::vector<BenchItem>& items,
                          const std::map<std::string, std::string>& responses) {
  BenchReport r = score_choice(Bench::CVBench, name, items, responses);  // accuracy/<source> per category
  auto mean_of = [&](std::initializer_list<const char*> keys) -> std::optional<double> {
    double sum = 0;
    int n = 0;
    for (const char* k : keys)
      if (auto it = r.metrics.find(std::string("accuracy/") + k); it != r.metrics.end()) sum += it->second, ++n;
    if (n == 0) return std::nullopt;
    return sum / n;
  };
  const auto d2 = mean_of({"ADE20K", "COCO"}), d3 = mean_of({"Omni3D"});
  if (d2) r.metrics["2d_accuracy"] = *d2;
  if (d3) r.metrics["3d_accuracy"] = *d3;
  if (d2 || d3) {
    r.metrics["cvbench_accuracy"] = d2 && d3 ? (*d2 + *d3) / 2 : d2 ? *d2 : *d3;
    r.headline = "cvbench_accuracy";
  }
  return r;
}

// VisualWebBench as its authors score it, per task: ROUGE-1/2/L F (x100, averaged over items) for captioning and
// both OCR tasks, the best ROUGE-1 F over the acceptable answers for WebQA, choice accuracy for the three grounding /
// prediction tasks. "average" is the mean of the seven headline numbers (ROUGE-L, F1, accuracy) of the tasks read.
BenchReport score_visualwebbench(const std::string& name, const std::vector<BenchItem>& items,
                                 const std::map<std::string, std::string>& responses) {
  BenchReport r = start_report(Bench::VisualWebBench, name, items, responses);
  struct Sums {
    double r1 = 0, r2 = 0, rl = 0, f1 = 0;
    int64_t n = 0, scored = 0;
    Tally choice;
  };
  std::map<std::string, Sums> by_task;
  for (size_t i = 0; i < items.size(); ++i) {
    auto& x = r.items[i];
    const std::string& task = items[i].category;
    Sums& s = by_task[task];
    ++s.n;
    if (task == "element_ground" || task == "action_prediction" || task == "action_ground") {
      const auto k = visualwebbench_choice(x.response);
      x.prediction = k ? std::string(1, char('A' + *k)) : "";
      x.correct = x.answered && x.prediction == x.answer;
      s.choice.add(*x.correct);
      continue;
    }
    // The official script replaces an empty answer by " " (and, for element OCR, a one-character one too).
    std::string pred = x.response;
    if (pred.empty() || (task == "element_ocr" && pred.size() == 1)) pred = " ";
    x.prediction = pred;
    if (task == "webqa") {
      // An item the rouge package raises on is left out of the mean, as the official try/except does.
      std::optional<double> best;
      for (const auto& gold : json::parse(items[i].extra.at("answers")))
        if (auto f = rouge_f(pred, gold.get<std::string>())) best = std::max(best.value_or(0.0), f->rouge_1);
        else {
          best.reset();
          break;
        }
      if (best) s.f1 += *best, ++s.scored;
      continue;
    }
    // Where the package would raise (e.g. an answer of only "."), the item scores 0.
    if (auto f = rouge_f(pred, x.answer)) s.r1 += f->rouge_1, s.r2 += f->rouge_2, s.rl += f->rouge_l;
    ++s.scored;
  }
  double sum = 0;
  int tasks = 0;
  for (const auto& [task, s] : by_task) {
    double headline;
    if (task == "webqa") {
      headline = s.scored ? 100 * s.f1 / double(s.scored) : 0.0;
      r.metrics[task + "/f1"] = headline;
    } else if (s.choice.n) {
      headline = s.choice.percent();
      r.metrics[task + "/accuracy"] = headline;
    } else {
      const double n = double(s.scored);
      r.metrics[task + "/rouge_1"] = 100 * s.r1 / n;
      r.metrics[task + "/rouge_2"] = 100 * s.r2 / n;
      headline = r.metrics[task + "/rouge_l"] = 100 * s.rl / n;
    }
    r.metrics[task + "/n"] = double(s.n);
    sum += headline, ++tasks;
  }
  if (tasks) r.metrics["average"] = sum / tasks, r.headline = "average";
  return r;
}

// BLINK as Phantom scores it: the first "(x)" of the answer (else the whole answer) against the letter; accuracy per
// subtask, and the headline is their unweighted mean (over the subtasks read).
BenchReport score_blink(const std::string& name, const std::vector<BenchItem>& items,
                        const std::map<std::string, std::string>& responses) {
  BenchReport r = start_report(Bench::BLINK, name, items, responses);
  for (auto& x : r.items) {
    x.prediction = blink_choice(x.response);
    x.correct = x.answered && x.prediction == x.answer;
  }
  add_accuracy(r);  // accuracy (over all items) and accuracy/<subtask>
  double sum = 0;
  int n = 0;
  for (const auto& [k, v] : r.metrics)
    if (k.rfind("accuracy/", 0) == 0) sum += v, ++n;
  if (n) r.metrics["subtask_mean"] = sum / n, r.headline = "subtask_mean";
  return r;
}

}  // namespace

BenchReport score_benchmark(Bench b, const std::string& name, const std::vector<BenchItem>& items,
                            const std::map<std::string, std::string>& responses) {
  switch (b) {
    case Bench::MMBench:
    case Bench::MMStar:
    case Bench::ScienceQA:
    case Bench::AI2D:
    case Bench::SEED:
    case Bench::SEED2Plus: return score_choice(b, name, items, responses);
    case Bench::CVBench: return score_cvbench(name, items, responses);
    case Bench::VisualWebBench: return score_visualwebbench(name, items, responses);
    case Bench::BLINK: return score_blink(name, items, responses);
    case Bench::POPE: return score_pope(name, items, responses);
    case Bench::MME: return score_mme(name, items, responses);
    case Bench::ChartQA: return score_chartqa(name, items, responses);
    case Bench::HallusionBench: return score_hallusion(name, items, responses);
    case Bench::MathVista:
    case Bench::MathVerse:
    case Bench::MMVet:
    case Bench::MMVet2:
    case Bench::LLaVAW: return start_report(b, name, items, responses);  // scored by the judge
  }
  throw std::runtime_error("unknown benchmark");
}

}  // namespace phantom::eval
