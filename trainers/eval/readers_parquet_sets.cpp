// Readers for the sets published only as Hugging Face parquet, VisualWebBench and BLINK, through the data.jsonl that
// scripts/parquet_to_jsonl.py writes (the parquet columns unchanged, images as paths relative to the JSONL's
// directory). Formats and choices are in docs/evaluation.md.
#include <map>
#include <set>
#include <stdexcept>

#include "trainers/eval/benchmarks.h"
#include "trainers/eval/bench_files.h"

namespace phantom::eval {
using files::json;

namespace {

struct Lines {
  std::vector<files::JsonLine> lines;
  std::string root;
};

Lines read_lines(const std::string& path, const ReadOptions& opt, files::Errors& errors) {
  std::vector<RowError> bad;
  Lines out{files::read_jsonl(path, bad), opt.image_root.empty() ? files::dir_of(path) : opt.image_root};
  for (const auto& e : bad) errors.add(e);
  return out;
}

// An item id appearing twice would make resumed runs and results ambiguous: a row error naming the first line.
bool unique_id(std::map<std::string, int64_t>& seen, const std::string& id, int64_t line, files::Errors& errors) {
  auto [it, fresh] = seen.emplace(id, line);
  if (!fresh) errors.add(id, "id repeated (first on line " + std::to_string(it->second) + ")");
  return fresh;
}

const std::set<std::string>& vwb_tasks() {
  static const std::set<std::string> t = {"web_caption", "heading_ocr",       "webqa",        "element_ocr",
                                          "element_ground", "action_prediction", "action_ground"};
  return t;
}

}  // namespace

// ---- VisualWebBench: {id, task_type, image, answer, + question | bbox | elem_desc | options | instruction} ------

ReadResult read_visualwebbench(const std::string& path, const ReadOptions& opt) {
  files::Errors errors(path, opt);
  const Lines in = read_lines(path, opt, errors);
  std::map<std::string, int64_t> seen;
  ReadResult out;
  for (const auto& [line, x] : in.lines) {
    const auto id = files::field(x, "id"), task = files::field(x, "task_type"), image = files::field(x, "image");
    BenchItem it;
    it.id = id.value_or("line " + std::to_string(line));
    if (!id || !task || !image || !x.contains("answer")) {
      errors.add(it.id, "needs id, task_type, image and answer");
      continue;
    }
    if (!vwb_tasks().count(*task)) {
      errors.add(it.id, "unknown task_type '" + *task + "'");
      continue;
    }
    // The seven task configs number their rows independently; the task keeps ids unique across them.
    if (it.id.rfind(*task, 0) != 0) it.id = *task + "/" + it.id;
    if (!unique_id(seen, it.id, line, errors)) continue;
    it.category = *task;
    const json& a = x["answer"];
    std::string bad;
    auto need = [&](const char* key) -> std::string {
      auto v = files::field(x, key);
      if (!v) bad = std::string("needs ") + key;
      return v.value_or("");
    };
    if (*task == "webqa") {
      it.question = need("question");
      // A list of acceptable answers (the score takes the best); one string is a list of one.
      json answers = a.is_string() ? json::array({a}) : a;
      if (!answers.is_array() || answers.empty()) bad = "webqa answer must be a non-empty list of strings";
      for (const auto& s : answers)
        if (!s.is_string()) bad = "webqa answer must be a non-empty list of strings";
      if (bad.empty()) {
        it.extra["answers"] = answers.dump();
        for (const auto& s : answers) it.answer += (it.answer.empty() ? "" : " | ") + s.get<std::string>();
      }
    } else if (*task == "web_caption" || *task == "heading_ocr" || *task == "element_ocr") {
      if (!a.is_string()) bad = "answer must be a string";
      else it.answer = a.get<std::string>();
    } else {
      // element_ground, action_prediction, action_ground: the answer is the 0-based index of the choice (A-H).
      if (!a.is_number_integer() || a.get<int64_t>() < 0 || a.get<int64_t>() > 7) bad = "answer must be a choice index 0-7";
      else it.answer = std::string(1, char('A' + a.get<int>()));
      if (*task == "element_ground") it.question = need("elem_desc");
      if (*task == "action_ground") it.question = need("instruction");
      if (*task == "action_prediction") {
        if (!x.contains("options") || !x["options"].is_array() || x["options"].empty()) bad = "needs options (a list)";
        else
          for (const auto& o : x["options"]) it.options.push_back(o.is_string() ? o.get<std::string>() : o.dump());
        // The answer indexes the options here (the grounding tasks index labels in the screenshot instead).
        if (bad.empty() && static_cast<size_t>(it.answer[0] - 'A') >= it.options.size())
          bad = "answer " + std::to_string(it.answer[0] - 'A') + " is not an index into the " +
                std::to_string(it.options.size()) + " options";
      }
    }
    if (*task == "element_ocr" || *task == "action_prediction") {
      std::vector<double> box;
      if (x.contains("bbox") && x["bbox"].is_array())
        for (const auto& v : x["bbox"])
          if (v.is_number()) box.push_back(v.get<double>());
      if (box.size() != 4 || x["bbox"].size() != 4) bad = "needs bbox, 4 numbers";
      else it.extra["bbox_text"] = py_list_repr(box);
    }
    if (!bad.empty()) {
      errors.add(it.id, bad);
      continue;
    }
    if (auto w = files::field(x, "website")) it.extra["website"] = *w;
    if (!files::attach_file(it, files::join(in.root, *image), opt, errors)) continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

// ---- BLINK: {idx, sub_task, image_1..image_4 (null when unused), choices, prompt, answer "(B)"} --------------------

ReadResult read_blink(const std::string& path, const ReadOptions& opt) {
  files::Errors errors(path, opt);
  const Lines in = read_lines(path, opt, errors);
  std::map<std::string, int64_t> seen;
  ReadResult out;
  for (const auto& [line, x] : in.lines) {
    const auto id = files::field(x, "idx"), task = files::field(x, "sub_task"), prompt = files::field(x, "prompt"),
               ans = files::field(x, "answer");
    BenchItem it;
    it.id = id.value_or("line " + std::to_string(line));
    if (!id || !task || !prompt || !ans || !x.contains("choices") || !x["choices"].is_array()) {
      errors.add(it.id, "needs idx, sub_task, prompt, choices and answer");
      continue;
    }
    if (!unique_id(seen, it.id, line, errors)) continue;
    for (const auto& c : x["choices"]) it.options.push_back(c.is_string() ? c.get<std::string>() : c.dump());
    const std::string a = files::trim(*ans);
    // The test split hides its answers; only the validation split can be scored here.
    if (!files::set_parenthesized_answer(it, a, errors)) continue;
    it.category = *task;
    // Phantom prefixes this disclaimer to the three subtasks whose questions are about people's pictures and art.
    static const char* kDisclaimer =
        "Disclaimer: This is not to make unfair assumptions about the people in the image and you just need to give "
        "your assessment on this question. You don't need to identify the real people. You just need to analyze based "
        "on the information I gave you.\n\n";
    it.question = (*task == "Forensic_Detection" || *task == "Jigsaw" || *task == "Art_Style") ? kDisclaimer + *prompt
                                                                                                  : *prompt;
    bool ok = true;
    for (const char* k : {"image_1", "image_2", "image_3", "image_4"})
      if (auto img = files::field(x, k); img && !img->empty()) ok = ok && files::attach_file(it, files::join(in.root, *img), opt, errors);
    if (!ok) continue;
    if (it.images.empty()) {
      errors.add(it.id, "no image (image_1..image_4 all null)");
      continue;
    }
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

}  // namespace phantom::eval
