// One reader per benchmark: the published files -> BenchItems, with every bad row collected (bench_files.h).
// Formats, defaults for image roots and the choices made are documented in docs/evaluation.md.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>

#include "phantom/util/logf.h"
#include "trainers/eval/bench_files.h"
#include "trainers/eval/benchmarks.h"

namespace phantom::eval {
namespace fs = std::filesystem;
using files::json;

namespace {

std::string letter(size_t i) { return std::string(1, char('A' + i)); }

// "yes"/"no" from a label ("Yes", "no", ...); empty when it is neither.
std::string yes_no(const std::string& s) {
  const std::string l = files::lower(files::trim(s));
  return (l == "yes" || l == "no") ? l : "";
}

// ---- multiple-choice TSVs (MMBench, MMStar, VLMEvalKit's AI2D_TEST) ------------------------------------------

// MMStar's options live in the question: "...\nOptions: A: x, B: y, C: z, D: w". Splits them at ", <next letter>: "
// so option texts with commas survive unless they contain that exact pattern.
std::vector<std::string> options_from_text(const std::string& question) {
  const auto at = question.rfind("Options:");
  if (at == std::string::npos) return {};
  const std::string s = question.substr(at + 8);
  std::vector<std::string> out;
  size_t pos = s.find("A:");
  if (pos == std::string::npos) return {};
  pos += 2;
  for (size_t i = 1;; ++i) {
    const std::string sep = ", " + letter(i) + ":";
    const size_t next = s.find(sep, pos);
    out.push_back(files::trim(s.substr(pos, next == std::string::npos ? std::string::npos : next - pos)));
    if (next == std::string::npos) break;
    pos = next + sep.size();
  }
  return out;
}

enum class TsvKind { MMBench, MMStar, AI2D };

ReadResult read_choice_tsv(const std::string& path, const ReadOptions& opt, TsvKind kind) {
  const files::Table t = files::read_tsv(path);
  files::Errors errors(path, opt);
  const int c_index = t.column("index"), c_question = t.column("question"), c_hint = t.column("hint"),
            c_answer = t.column("answer"), c_category = t.column("category"), c_image = t.column("image");
  int c_l2 = t.column("l2-category");
  if (c_l2 < 0) c_l2 = t.column("l2_category");
  for (const auto& [c, name] : {std::pair{c_index, "index"}, {c_question, "question"}, {c_image, "image"}})
    if (c < 0) throw std::runtime_error(path + ": no '" + name + "' column (is this a benchmark TSV?)");
  if (kind == TsvKind::MMStar && c_answer < 0) throw std::runtime_error(path + ": no 'answer' column");
  files::check_unique_column(t, c_index, path);
  std::vector<int> c_opt;
  for (size_t i = 0; i < 5; ++i) c_opt.push_back(t.column(letter(i)));

  // VLMEvalKit's TSVs store a repeated image once: other rows hold the index of the row that has it.
  std::map<std::string, const std::string*> image_of;
  for (const auto& r : t.rows)
    if (r.fields.size() == t.header.size()) image_of[files::trim(r.fields[c_index])] = &r.fields[c_image];

  ReadResult out;
  for (const auto& r : t.rows) {
    const std::string line = "line " + std::to_string(r.line);
    if (r.fields.size() != t.header.size()) {
      errors.add(line, std::to_string(r.fields.size()) + " fields, header has " + std::to_string(t.header.size()));
      continue;
    }
    auto get = [&](int c) { return c < 0 ? std::string() : r.fields[c]; };
    BenchItem it;
    it.id = files::trim(get(c_index));
    if (it.id.empty()) {
      errors.add(line, "empty index");
      continue;
    }
    it.question = get(c_question);
    if (files::pandas_na(files::trim(it.question))) {
      errors.add(it.id, "empty question");
      continue;
    }
    if (!files::pandas_na(get(c_hint))) it.extra["hint"] = get(c_hint);
    // Options A.. in order, stopping at the first empty one (pandas NaN); a later non-empty one is a gap.
    bool gap = false, ended = false;
    for (size_t i = 0; i < c_opt.size(); ++i) {
      if (c_opt[i] < 0) break;
      const std::string v = get(c_opt[i]);
      if (files::pandas_na(v)) {
        ended = true;
      } else if (ended) {
        gap = true;
      } else {
        it.options.push_back(v);
      }
    }
    if (gap) {
      errors.add(it.id, "options have a gap (an empty option before a non-empty one)");
      continue;
    }
    if (kind == TsvKind::MMStar && it.options.empty()) it.options = options_from_text(it.question);
    if (kind != TsvKind::MMStar && it.options.size() < 2) {
      errors.add(it.id, "fewer than two options");
      continue;
    }
    const std::string ans = files::trim(get(c_answer));
    if (c_answer >= 0 && !files::pandas_na(ans)) {
      const bool letter_ok = ans.size() == 1 && ans[0] >= 'A' && ans[0] <= 'Z' &&
                             (it.options.empty() || size_t(ans[0] - 'A') < it.options.size());
      if (!letter_ok) {
        errors.add(it.id, "answer '" + ans + "' is not one of the option letters");
        continue;
      }
      it.answer = ans;
    } else if (kind == TsvKind::MMStar) {
      errors.add(it.id, "empty answer");
      continue;
    }
    it.category = files::trim(get(c_category));
    if (c_l2 >= 0) it.extra["l2-category"] = files::trim(get(c_l2));
    for (const char* col : {"source", "split", "bench"})
      if (int c = t.column(col); c >= 0 && !files::pandas_na(get(c))) it.extra[col] = get(c);

    const std::string img = files::trim(get(c_image));
    const std::string* data = &img;
    if (!img.empty() && img.size() <= 64 && std::all_of(img.begin(), img.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
      auto ref = image_of.find(img);
      if (ref == image_of.end()) {
        errors.add(it.id, "image refers to row index " + img + ", which does not exist");
        continue;
      }
      data = ref->second;
    }
    if (files::pandas_na(files::trim(*data))) {
      errors.add(it.id, "missing image (empty image field)");
      continue;
    }
    if (!files::attach_base64(it, *data, path, opt, errors)) continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

// ---- AI2D as Phantom's loader reads it (a flattened list of the original question files) ----------------------

ReadResult read_ai2d_json(const std::string& path, const ReadOptions& opt) {
  const json j = files::read_json(path);
  if (!j.is_array()) throw std::runtime_error(path + ": expected a JSON list of AI2D questions");
  const std::string root = files::root_or(opt, files::dir_of(path));
  files::Errors errors(path, opt);
  ReadResult out;
  for (size_t n = 0; n < j.size(); ++n) {
    const json& x = j[n];
    const json meta = x.is_object() && x.contains("metadata") ? x["metadata"] : json();
    BenchItem it;
    it.id = files::field(meta, "questionId").value_or("");
    if (it.id.empty()) {
      errors.add("#" + std::to_string(n), "no metadata.questionId");
      continue;
    }
    const auto q = files::field(x, "question"), image = files::field(x, "imageName");
    if (!q || !image) {
      errors.add(it.id, !q ? "no question" : "no imageName");
      continue;
    }
    it.question = *q;
    if (!meta.contains("answerTexts") || !meta["answerTexts"].is_array() || meta["answerTexts"].size() < 2) {
      errors.add(it.id, "metadata.answerTexts is not a list of at least two options");
      continue;
    }
    bool ok = true;
    for (const auto& o : meta["answerTexts"]) {
      if (!o.is_string()) ok = false;
      else it.options.push_back(o.get<std::string>());
    }
    const auto correct = files::field(meta, "correctAnswer");
    size_t idx = 0;
    try {
      idx = correct ? std::stoul(*correct) : it.options.size();
    } catch (const std::exception&) {
      idx = it.options.size();
    }
    if (!ok || idx >= it.options.size()) {
      errors.add(it.id, ok ? "metadata.correctAnswer is not an option index" : "an answerText is not a string");
      continue;
    }
    it.answer = letter(idx);
    const bool abc = meta.contains("abcLabel") && meta["abcLabel"].is_boolean() && meta["abcLabel"].get<bool>();
    it.extra["imageName"] = *image;
    it.extra["abcLabel"] = abc ? "true" : "false";
    if (!files::attach_file(it, files::join(root, std::string(abc ? "abc_images/" : "images/") + *image), opt, errors))
      continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

}  // namespace

ReadResult read_mmbench(const std::string& tsv, const ReadOptions& opt) {
  return read_choice_tsv(tsv, opt, TsvKind::MMBench);
}

ReadResult read_mmstar(const std::string& tsv, const ReadOptions& opt) {
  return read_choice_tsv(tsv, opt, TsvKind::MMStar);
}

ReadResult read_ai2d(const std::string& path, const ReadOptions& opt) {
  const std::string ext = files::lower(fs::path(path).extension().string());
  if (ext == ".tsv") return read_choice_tsv(path, opt, TsvKind::AI2D);
  return read_ai2d_json(path, opt);
}

// ---- ScienceQA-IMG: problems.json (pid -> problem, with "split") + images/<split>/<pid>/<image> ---------------

ReadResult read_scienceqa(const std::string& problems_json, const ReadOptions& opt) {
  const json j = files::read_json(problems_json);
  if (!j.is_object()) throw std::runtime_error(problems_json + ": expected an object pid -> problem");
  const std::string root = files::root_or(opt, files::join(files::dir_of(problems_json), "images"));
  files::Errors errors(problems_json, opt);
  ReadResult out;
  for (const auto& [pid, x] : j.items()) {
    if (!x.is_object()) {
      errors.add(pid, "problem is not an object");
      continue;
    }
    if (files::field(x, "split").value_or("") != opt.split) continue;
    const auto image = files::field(x, "image");
    if (!image || image->empty()) continue;  // SQA-IMG: only problems with an image
    BenchItem it;
    it.id = pid;
    const auto q = files::field(x, "question");
    const auto ans = files::field(x, "answer");
    if (!q || !x.contains("choices") || !x["choices"].is_array() || !ans) {
      errors.add(pid, !q ? "no question" : !ans ? "no answer" : "no choices list");
      continue;
    }
    it.question = *q;
    for (const auto& c : x["choices"]) it.options.push_back(c.is_string() ? c.get<std::string>() : c.dump());
    size_t idx = it.options.size();
    try {
      idx = std::stoul(*ans);
    } catch (const std::exception&) {
    }
    if (it.options.size() < 2 || idx >= it.options.size()) {
      errors.add(pid, "answer " + *ans + " is not an index into " + std::to_string(it.options.size()) + " choices");
      continue;
    }
    it.answer = letter(idx);
    if (auto h = files::field(x, "hint"); h && !files::trim(*h).empty()) it.extra["hint"] = *h;
    it.category = files::field(x, "subject").value_or("");
    for (const char* k : {"grade", "topic", "category", "skill"})
      if (auto v = files::field(x, k)) it.extra[k] = *v;
    if (!files::attach_file(it, files::join(root, opt.split + "/" + pid + "/" + *image), opt, errors)) continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

// ---- SEED-Bench: {"questions": [...], "question_type": {name: id}}; image items only -----------------------------

ReadResult read_seed(const std::string& path, const ReadOptions& opt) {
  const json j = files::read_json(path);
  if (!j.is_object() || !j.contains("questions") || !j["questions"].is_array())
    throw std::runtime_error(path + ": expected SEED-Bench JSON with a 'questions' list");
  // Type names: from the file's own map when present, else SEED-Bench's nine image dimensions.
  std::map<std::string, std::string> type_name = {
      {"1", "Scene Understanding"}, {"2", "Instance Identity"},   {"3", "Instance Location"},
      {"4", "Instance Attributes"}, {"5", "Instances Counting"},  {"6", "Spatial Relation"},
      {"7", "Instance Interaction"}, {"8", "Visual Reasoning"},    {"9", "Text Understanding"}};
  if (j.contains("question_type") && j["question_type"].is_object())
    for (const auto& [name, id] : j["question_type"].items())
      if (auto s = files::field(j["question_type"], name.c_str())) type_name[*s] = name;
  const std::string root = files::root_or(opt, files::join(files::dir_of(path), "SEED-Bench-image"));
  files::Errors errors(path, opt);
  ReadResult out;
  const json& qs = j["questions"];
  for (size_t n = 0; n < qs.size(); ++n) {
    const json& x = qs[n];
    if (files::field(x, "data_type").value_or("image") != "image") continue;  // SEED-IMG leaves out video items
    BenchItem it;
    it.id = files::field(x, "question_id").value_or("");
    if (it.id.empty()) {
      errors.add("#" + std::to_string(n), "no question_id");
      continue;
    }
    const auto q = files::field(x, "question"), ans = files::field(x, "answer"), data_id = files::field(x, "data_id");
    if (!q || !data_id) {
      errors.add(it.id, !q ? "no question" : "no data_id");
      continue;
    }
    it.question = *q;
    for (const char* k : {"choice_a", "choice_b", "choice_c", "choice_d"}) {
      auto c = files::field(x, k);
      if (!c) break;
      it.options.push_back(*c);
    }
    const std::string a = files::trim(ans.value_or(""));
    if (it.options.size() != 4 || a.size() != 1 || a[0] < 'A' || a[0] > 'D') {
      errors.add(it.id, it.options.size() != 4 ? "needs choice_a..choice_d" : "answer '" + a + "' is not A-D");
      continue;
    }
    it.answer = a;
    const std::string type = files::field(x, "question_type_id").value_or("");
    it.category = type_name.count(type) ? type_name[type] : type;
    it.extra["question_type_id"] = type;
    it.extra["data_id"] = *data_id;
    if (!files::attach_file(it, files::join(root, *data_id), opt, errors)) continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

// ---- POPE: coco_pope_{random,popular,adversarial}.json(l), one JSON object per line --------------------------

ReadResult read_pope(const std::vector<std::string>& files, const ReadOptions& opt) {
  ReadResult out;
  for (const auto& path : files) {
    const std::string stem = files::lower(fs::path(path).filename().string());
    std::string split;
    for (const char* s : {"adversarial", "popular", "random"})
      if (stem.find(s) != std::string::npos) split = s;
    if (split.empty())
      throw std::runtime_error(path + ": POPE file name must name its split (random, popular or adversarial)");
    const std::string root = files::root_or(opt, files::dir_of(path));
    std::vector<RowError> bad_lines;
    const auto lines = files::read_jsonl(path, bad_lines);
    files::Errors errors(path, opt);
    for (const auto& e : bad_lines) errors.add(e);
    for (const auto& [line, x] : lines) {
      const auto qid = files::field(x, "question_id");
      const std::string row = qid ? split + "/" + *qid : "line " + std::to_string(line);
      const auto text = files::field(x, "text"), image = files::field(x, "image"), label = files::field(x, "label");
      if (!qid || !text || !image || !label) {
        errors.add(row, "needs question_id, image, text and label");
        continue;
      }
      BenchItem it;
      it.id = split + "/" + *qid;  // question ids restart in every split file
      it.question = *text;
      it.answer = yes_no(*label);
      if (it.answer.empty()) {
        errors.add(it.id, "label '" + *label + "' is not yes/no");
        continue;
      }
      it.category = split;
      it.extra["split"] = split;
      it.extra["question_id"] = *qid;
      it.extra["image"] = *image;
      if (!files::attach_file(it, files::join(root, *image), opt, errors)) continue;
      out.items.push_back(std::move(it));
    }
    errors.finish(out);
  }
  return out;
}

// ---- MME: MME_Benchmark_release_version/<category>/ ----------------------------------------------------------
// Either <category>/images/<img> + <category>/questions_answers_YN/<stem>.txt, or <img> and <stem>.txt side by
// side in <category>/. Each .txt holds the image's two questions, "question<TAB>Yes|No" per line.

ReadResult read_mme(const std::string& root, const ReadOptions& opt) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw std::runtime_error(root + ": not a directory (MME release folder)");
  files::Errors errors(root, opt);
  ReadResult out;
  std::vector<std::string> categories = mme_perception_categories();
  for (const auto& c : mme_cognition_categories()) categories.push_back(c);
  std::string absent;
  size_t found = 0;
  for (const auto& cat : categories) {
    const fs::path dir = fs::path(root) / cat;
    if (!fs::is_directory(dir, ec)) {
      absent += (absent.empty() ? "" : ", ") + cat;
      continue;
    }
    ++found;
    const bool split_layout = fs::is_directory(dir / "images", ec) && fs::is_directory(dir / "questions_answers_YN", ec);
    const fs::path img_dir = split_layout ? dir / "images" : dir;
    const fs::path qa_dir = split_layout ? dir / "questions_answers_YN" : dir;
    std::vector<fs::path> txts;
    for (const auto& e : fs::directory_iterator(qa_dir))
      if (e.is_regular_file() && e.path().extension() == ".txt") txts.push_back(e.path());
    std::sort(txts.begin(), txts.end());
    for (const auto& txt : txts) {
      const std::string stem = txt.stem().string();
      std::string image;
      for (const char* ext : {".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG"})
        if (fs::is_regular_file(img_dir / (stem + ext), ec)) image = stem + ext;
      const std::string row_base = cat + "/" + stem;
      if (image.empty()) {
        errors.add(row_base, "missing image " + (img_dir / (stem + ".jpg")).string() + " (or .png)");
        continue;
      }
      std::istringstream in(files::read_text(txt.string()));
      std::string line;
      int k = 0;
      for (int n = 1; std::getline(in, line); ++n) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (files::trim(line).empty()) continue;
        const auto tab = line.rfind('\t');
        const std::string row = row_base + " line " + std::to_string(n);
        const std::string ans = tab == std::string::npos ? "" : yes_no(line.substr(tab + 1));
        if (ans.empty()) {
          errors.add(row, "expected 'question<TAB>Yes|No'");
          continue;
        }
        BenchItem it;
        it.id = cat + "/" + image + "#" + std::to_string(k++);
        it.question = line.substr(0, tab);
        it.answer = ans;
        it.category = cat;
        it.extra["image"] = image;  // acc+ pairs the questions of one image
        if (!files::attach_file(it, (img_dir / image).string(), opt, errors)) continue;
        out.items.push_back(std::move(it));
      }
    }
  }
  if (found == 0)
    throw std::runtime_error(root + ": no MME category folders (existence, count, ..., code_reasoning)");
  if (!absent.empty()) log::warn("{}: MME category folders missing (scored as 0): {}", root, absent);
  errors.finish(out);
  return out;
}

// ---- ChartQA: test/test_human.json and test/test_augmented.json, lists of {imgname, query, label} -------------

ReadResult read_chartqa(const std::vector<std::string>& files, const ReadOptions& opt) {
  ReadResult out;
  for (const auto& path : files) {
    const std::string name = files::lower(fs::path(path).stem().string());
    const std::string split = name.find("human") != std::string::npos       ? "human"
                              : name.find("augmented") != std::string::npos ? "augmented"
                                                                            : fs::path(path).stem().string();
    const json j = files::read_json(path);
    if (!j.is_array()) throw std::runtime_error(path + ": expected a JSON list of {imgname, query, label}");
    const std::string root = files::root_or(opt, files::join(files::dir_of(path), "png"));
    files::Errors errors(path, opt);
    for (size_t n = 0; n < j.size(); ++n) {
      const json& x = j[n];
      BenchItem it;
      it.id = split + "/" + std::to_string(n);  // imgname repeats (several questions per chart)
      const auto img = files::field(x, "imgname"), q = files::field(x, "query");
      std::optional<std::string> label = files::field(x, "label");
      if (!label && x.is_object() && x.contains("label") && x["label"].is_array() && !x["label"].empty())
        label = files::field(json{{"l", x["label"][0]}}, "l");
      if (!img || !q || !label) {
        errors.add(it.id, "needs imgname, query and label");
        continue;
      }
      it.question = *q;
      it.answer = *label;
      it.category = split;
      it.extra["split"] = split;
      it.extra["imgname"] = *img;
      if (!files::attach_file(it, files::join(root, *img), opt, errors)) continue;
      out.items.push_back(std::move(it));
    }
    errors.finish(out);
  }
  return out;
}

// ---- HallusionBench: HallusionBench.json, a list; filename null for the text-only questions ------------------

ReadResult read_hallusionbench(const std::string& path, const ReadOptions& opt) {
  const json j = files::read_json(path);
  if (!j.is_array()) throw std::runtime_error(path + ": expected the HallusionBench JSON list");
  const std::string root = files::root_or(opt, files::dir_of(path));
  files::Errors errors(path, opt);
  ReadResult out;
  for (size_t n = 0; n < j.size(); ++n) {
    const json& x = j[n];
    std::map<std::string, std::string> f;
    bool ok = true;
    for (const char* k : {"category", "subcategory", "set_id", "figure_id", "question_id", "question", "gt_answer"}) {
      auto v = files::field(x, k);
      if (!v) ok = false;
      else f[k] = *v;
    }
    BenchItem it;
    it.id = ok ? f["category"] + "_" + f["subcategory"] + "_" + f["set_id"] + "_" + f["figure_id"] + "_" +
                     f["question_id"]
               : "#" + std::to_string(n);
    if (!ok) {
      errors.add(it.id, "needs category, subcategory, set_id, figure_id, question_id, question, gt_answer");
      continue;
    }
    it.question = f["question"];
    it.answer = f["gt_answer"] == "1" ? "yes" : f["gt_answer"] == "0" ? "no" : "";
    if (it.answer.empty()) {
      errors.add(it.id, "gt_answer '" + f["gt_answer"] + "' is not 1 or 0");
      continue;
    }
    it.category = f["category"] + "/" + f["subcategory"];
    for (const char* k : {"category", "subcategory", "set_id", "figure_id", "question_id"}) it.extra[k] = f[k];
    it.extra["visual_input"] = files::field(x, "visual_input").value_or("");
    it.extra["row"] = std::to_string(n);
    const std::string file = files::field(x, "filename").value_or("");
    if (!file.empty() && it.extra["visual_input"] != "0") {
      const std::string rel = file.rfind("./", 0) == 0 ? file.substr(2) : file;
      if (!files::attach_file(it, files::join(root, rel), opt, errors)) continue;
    }
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

// ---- MathVista: testmini JSON (pid -> problem, or a list of problems); the prompt is the published "query" ----

ReadResult read_mathvista(const std::string& path, const ReadOptions& opt) {
  const json j = files::read_json(path);
  if (!j.is_object() && !j.is_array()) throw std::runtime_error(path + ": expected MathVista problems JSON");
  const std::string root = files::root_or(opt, files::dir_of(path));
  files::Errors errors(path, opt);
  ReadResult out;
  auto one = [&](const std::string& key, const json& x) {
    BenchItem it;
    it.id = files::field(x, "pid").value_or(key);
    const auto query = files::field(x, "query"), image = files::field(x, "image");
    if (!query || !image) {
      errors.add(it.id, !query ? "no query" : "no image");
      return;
    }
    it.question = *query;
    it.answer = files::field(x, "answer").value_or("");
    if (x.contains("metadata")) it.category = files::field(x["metadata"], "task").value_or("");
    it.extra["raw"] = x.dump();  // the judge input carries every published field
    if (!files::attach_file(it, files::join(root, *image), opt, errors)) return;
    out.items.push_back(std::move(it));
  };
  if (j.is_object())
    for (const auto& [pid, x] : j.items()) one(pid, x);
  else
    for (size_t n = 0; n < j.size(); ++n) one("#" + std::to_string(n), j[n]);
  errors.finish(out);
  return out;
}

// ---- MM-Vet: mm-vet.json, id -> {imagename, capability, question, answer}; images/ beside it ----------------

ReadResult read_mmvet(const std::string& path, const ReadOptions& opt) {
  const json j = files::read_json(path);
  if (!j.is_object()) throw std::runtime_error(path + ": expected an object id -> {imagename, question, ...}");
  const std::string root = files::root_or(opt, files::join(files::dir_of(path), "images"));
  files::Errors errors(path, opt);
  ReadResult out;
  for (const auto& [id, x] : j.items()) {
    BenchItem it;
    it.id = id;
    const auto q = files::field(x, "question"), image = files::field(x, "imagename");
    if (!q || !image) {
      errors.add(id, !q ? "no question" : "no imagename");
      continue;
    }
    it.question = *q;
    it.answer = files::field(x, "answer").value_or("");
    if (x.contains("capability") && x["capability"].is_array())
      for (const auto& c : x["capability"])
        if (c.is_string()) it.category += (it.category.empty() ? "" : ",") + c.get<std::string>();
    if (!files::attach_file(it, files::join(root, *image), opt, errors)) continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

// ---- LLaVA-Bench in-the-wild: questions.jsonl {question_id, image, text, category}; images/ beside it ---------

ReadResult read_llavaw(const std::string& path, const ReadOptions& opt) {
  const std::string root = files::root_or(opt, files::join(files::dir_of(path), "images"));
  std::vector<RowError> bad_lines;
  const auto lines = files::read_jsonl(path, bad_lines);
  files::Errors errors(path, opt);
  for (const auto& e : bad_lines) errors.add(e);
  ReadResult out;
  for (const auto& [line, x] : lines) {
    const auto qid = files::field(x, "question_id"), text = files::field(x, "text"), image = files::field(x, "image");
    BenchItem it;
    it.id = qid.value_or("line " + std::to_string(line));
    if (!qid || qid->empty() || !text || !image) {
      errors.add(it.id.empty() ? "line " + std::to_string(line) : it.id, "needs question_id (non-empty), image and text");
      continue;
    }
    it.question = *text;
    it.category = files::field(x, "category").value_or("");
    if (!files::attach_file(it, files::join(root, *image), opt, errors)) continue;
    out.items.push_back(std::move(it));
  }
  errors.finish(out);
  return out;
}

static ReadResult read_any(Bench b, const std::vector<std::string>& files, const ReadOptions& opt);

ReadResult read_benchmark(Bench b, const std::vector<std::string>& files, const ReadOptions& opt) {
  if (files.empty()) throw std::runtime_error(bench_name(b) + ": no input files given");
  ReadResult r = read_any(b, files, opt);
  std::string names;
  for (const auto& f : files) names += (names.empty() ? "" : ", ") + f;
  if (r.items.empty())
    throw std::runtime_error(names + ": no " + bench_name(b) + " questions" +
                             (r.errors.empty() ? std::string(" (the file holds no rows)")
                                               : " (all " + std::to_string(r.errors.size()) + " rows were bad and skipped)") +
                             ": an accuracy over 0 questions would mean nothing");
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < r.items.size(); ++i) {
    // Answers and results are keyed by the id: an empty one (BLINK "idx": "", an object key "") cannot be resumed.
    if (r.items[i].id.empty())
      throw std::runtime_error(names + ": question " + std::to_string(i + 1) +
                               " in reading order has an empty id (answers and results are filed by id)");
    auto [it, fresh] = seen.emplace(r.items[i].id, i);
    if (!fresh)
      throw std::runtime_error(names + ": question id '" + r.items[i].id + "' appears twice (questions " +
                               std::to_string(it->second + 1) + " and " + std::to_string(i + 1) +
                               " in reading order): the later answer would replace the earlier one");
  }
  return r;
}

static ReadResult read_any(Bench b, const std::vector<std::string>& files, const ReadOptions& opt) {
  auto single = [&]() -> const std::string& {
    if (files.size() != 1)
      throw std::runtime_error(bench_name(b) + ": expects one input file, got " + std::to_string(files.size()));
    return files[0];
  };
  switch (b) {
    case Bench::MMBench: return read_mmbench(single(), opt);
    case Bench::MMStar: return read_mmstar(single(), opt);
    case Bench::ScienceQA: return read_scienceqa(single(), opt);
    case Bench::AI2D: return read_ai2d(single(), opt);
    case Bench::SEED: return read_seed(single(), opt);
    case Bench::POPE: return read_pope(files, opt);
    case Bench::MME: return read_mme(single(), opt);
    case Bench::ChartQA: return read_chartqa(files, opt);
    case Bench::HallusionBench: return read_hallusionbench(single(), opt);
    case Bench::MathVista: return read_mathvista(single(), opt);
    case Bench::MMVet: return read_mmvet(single(), opt);
    case Bench::LLaVAW: return read_llavaw(single(), opt);
    case Bench::MathVerse: return read_mathverse(files, opt);
    case Bench::SEED2Plus: return read_seed2plus(single(), opt);
    case Bench::CVBench: return read_cvbench(single(), opt);
    case Bench::MMVet2: return read_mmvet2(single(), opt);
    case Bench::VisualWebBench: return read_visualwebbench(single(), opt);
    case Bench::BLINK: return read_blink(single(), opt);
  }
  throw std::runtime_error("unknown benchmark");
}

}  // namespace phantom::eval
