// Readers for the sets beyond the paper's main table that Phantom's own evaluation code covers: MathVerse,
// SEED-Bench-2-Plus, CV-Bench, MM-Vet-v2. Formats and choices are in docs/evaluation.md.
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "trainers/eval/benchmarks.h"
#include "trainers/eval/bench_files.h"

namespace phantom::eval {
namespace fs = std::filesystem;
using files::json;

// ---- MathVerse: testmini.json (+ testmini_text_only.json), lists of problems; the prompt is "query_wo" ------------

ReadResult read_mathverse(const std::vector<std::string>& files, const ReadOptions& opt) {
  ReadResult out;
  size_t offset = 0;  // the text-only problems restart sample_index at 1; Phantom offsets them by the first file's size
  for (const auto& path : files) {
    const json j = files::read_json(path);
    if (!j.is_array()) throw std::runtime_error(path + ": expected the MathVerse JSON list of problems");
    const std::string root = files::root_or(opt, files::join(files::dir_of(path), "images"));
    files::Errors errors(path, opt);
    for (size_t n = 0; n < j.size(); ++n) {
      const json& x = j[n];
      const auto idx = files::field(x, "sample_index");
      const auto query = files::field(x, "query_wo"), question = files::field(x, "question"), ans = files::field(x, "answer");
      const std::string row = idx.value_or("#" + std::to_string(n));
      if (!idx || !query || !question || !ans) {
        errors.add(row, "needs sample_index, question, query_wo and answer");
        continue;
      }
      BenchItem it;
      try {
        const long long n = offset ? std::stoll(*idx) : 0;
        if (n > std::numeric_limits<long long>::max() - static_cast<long long>(offset)) throw std::out_of_range("");
        it.id = offset ? std::to_string(n + static_cast<long long>(offset)) : *idx;
      } catch (const std::exception&) {
        errors.add(row, "sample_index '" + *idx + "' is not a number within range");
        continue;
      }
      it.question = *query;
      it.answer = *ans;
      it.category = files::field(x, "problem_version").value_or("");
      json raw = x;
      raw["sample_index"] = it.id;  // the judge input carries every published field, under the id we answer by
      it.extra["raw"] = raw.dump();
      const std::string image = files::field(x, "image").value_or("");
      if (!image.empty() && !files::attach_file(it, files::join(root, image), opt, errors)) continue;
      out.items.push_back(std::move(it));
    }
    errors.finish(out);
    offset += j.size();
  }
  return out;
}

// ---- SEED-Bench-2-Plus: a list of questions (or {"questions": [...]}); images at <data_id> beside the file -------

ReadResult read_seed2plus(const std::string& path, const ReadOptions& opt) {
  const json j = files::read_json(path);
  const json* qs = j.is_array() ? &j : (j.is_object() && j.contains("questions") ? &j["questions"] : nullptr);
  if (!qs || !qs->is_array()) throw std::runtime_error(path + ": expected SEED-Bench-2-Plus questions (a JSON list)");
  const std::string root = files::root_or(opt, files::dir_of(path));
  files::Errors errors(path, opt);
  ReadResult out;
  for (size_t n = 0; n < qs->size(); ++n) {
    const json& x = (*qs)[n];
    BenchItem it;
    it.id = files::field(x, "question_id").value_or("");
    if (it.id.empty()) {
      errors.add("#" + std::to_string(n), "no question_id");
      continue;
    }
    const auto q = files::field(x, "question"), data_id = files::field(x, "data_id");
    if (!q || !data_id) {
      errors.add(it.id, !q ? "no question" : "no data_id");
      continue;
    }
    it.question = *q;
    for (const char* k : {"choice_A", "choice_B", "choice_C", "choice_D"}) {
      auto c = files::field(x, k);
      if (!c) c = files::field(x, files::lower(k).c_str());  // SEED-Bench-1 spells them choice_a..choice_d
      if (!c) break;
      it.options.push_back(*c);
    }
    const std::string a = files::trim(files::field(x, "answer").value_or(""));
    if (it.options.size() != 4 || a.size() != 1 || a[0] < 'A' || a[0] > 'D') {
      errors.add(it.id, it.options.size() != 4 ? "needs choice_A..choice_D" : "answer '" + a + "' is not A-D");
      continue;
    }
    it.answer = a;
    it.category = files::field(x, "question_image_type").value_or("");  // chart, map, web
    it.extra["data_id"] = *data_id;
    if (!files::attach_file(it, files::join(root, *data_id), opt, errors)) continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

// ---- CV-Bench: test.jsonl {idx, type, task, image, prompt, choices, answer "(B)", source}; img/ beside it --------

ReadResult read_cvbench(const std::string& path, const ReadOptions& opt) {
  const std::string root = files::root_or(opt, files::dir_of(path));
  std::vector<RowError> bad_lines;
  const auto lines = files::read_jsonl(path, bad_lines);
  files::Errors errors(path, opt);
  for (const auto& e : bad_lines) errors.add(e);
  ReadResult out;
  for (const auto& [line, x] : lines) {
    BenchItem it;
    it.id = files::field(x, "idx").value_or("line " + std::to_string(line));
    const auto prompt = files::field(x, "prompt"), image = files::field(x, "image"), ans = files::field(x, "answer"),
               source = files::field(x, "source");
    if (!files::field(x, "idx") || !prompt || !image || !ans || !source || !x.contains("choices") ||
        !x["choices"].is_array()) {
      errors.add(it.id, "needs idx, prompt, image, choices, answer and source");
      continue;
    }
    it.question = *prompt;
    for (const auto& c : x["choices"]) it.options.push_back(c.is_string() ? c.get<std::string>() : c.dump());
    // The answer is written "(B)"; it must name one of the choices.
    const std::string a = files::trim(*ans);
    if (!files::set_parenthesized_answer(it, a, errors)) continue;
    it.category = *source;  // ADE20K, COCO (2D) or Omni3D (3D): what the CV-Bench score averages over
    for (const char* k : {"type", "task"})
      if (auto v = files::field(x, k)) it.extra[k] = *v;
    if (!files::attach_file(it, files::join(root, *image), opt, errors)) continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

// ---- MM-Vet-v2: id -> {question with "<IMG>name.png<IMG>" markers, answer, capability}; images/ beside it -------

ReadResult read_mmvet2(const std::string& path, const ReadOptions& opt) {
  const json j = files::read_json(path);
  if (!j.is_object()) throw std::runtime_error(path + ": expected an object id -> {question, answer, capability}");
  const std::string root = files::root_or(opt, files::join(files::dir_of(path), "images"));
  files::Errors errors(path, opt);
  ReadResult out;
  for (const auto& [id, x] : j.items()) {
    BenchItem it;
    it.id = id;
    const auto q = files::field(x, "question");
    if (!q) {
      errors.add(id, "no question");
      continue;
    }
    // The question alternates text and image file names between <IMG> markers; the text parts are the question
    // (as Phantom's loader joins them), the names its images in order.
    std::vector<std::string> names;
    for (size_t pos = 0;;) {
      const size_t at = q->find("<IMG>", pos);
      const std::string part = q->substr(pos, at == std::string::npos ? std::string::npos : at - pos);
      const std::string ext = files::lower(fs::path(part).extension().string());
      if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") names.push_back(part);
      else it.question += part;
      if (at == std::string::npos) break;
      pos = at + 5;
    }
    if (names.empty()) {
      errors.add(id, "no <IMG>file<IMG> image in the question");
      continue;
    }
    it.answer = files::field(x, "answer").value_or("");
    if (x.contains("capability") && x["capability"].is_array())
      for (const auto& c : x["capability"])
        if (c.is_string()) it.category += (it.category.empty() ? "" : ",") + c.get<std::string>();
    bool ok = true;
    for (const auto& name : names) ok = ok && files::attach_file(it, files::join(root, name), opt, errors);
    if (!ok) continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

}  // namespace phantom::eval
