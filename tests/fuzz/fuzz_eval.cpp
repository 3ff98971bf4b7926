// Fuzz targets of the benchmark readers, through eval::read_benchmark as `phantom eval` reads a file (its checks
// for no questions and repeated ids included): the TSVs (MMBench with inline base64 images, MMStar), the JSON
// files (ScienceQA, AI2D, SEED, ChartQA, HallusionBench, MathVista, MM-Vet, MathVerse, SEED-2-Plus, MM-Vet-v2), the
// JSONL files (POPE, LLaVA-W, CV-Bench) and the JSONL that scripts/parquet_to_jsonl.py writes (VisualWebBench,
// BLINK). The policies alternate: bad rows fatal or skipped, images decoded or only found. An accepted file must
// give items with ids, answers within their options, and prompts (the next layer).
#include <cstdint>
#include <stdexcept>

#include "tests/fuzz/fuzz.h"
#include "trainers/eval/benchmarks.h"

namespace phantom::fuzz {
namespace {

std::string base64(const std::string& bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 2]);
    out += k[v >> 18 & 63], out += k[v >> 12 & 63];
    out += i + 1 < bytes.size() ? k[v >> 6 & 63] : '=';
    out += i + 2 < bytes.size() ? k[v & 63] : '=';
  }
  return out;
}

struct EvalSeed {
  std::string target;  // the target's name
  eval::Bench bench;
  std::string file;    // the name the reader sees (POPE and ChartQA read the split from it)
  std::vector<std::string> seeds;
};

std::vector<EvalSeed> eval_seeds(const std::string& png) {
  const std::string b64 = base64(png);
  using eval::Bench;
  return {
      {"eval-tsv-mmbench", Bench::MMBench, "mmbench_dev.tsv",
       {"index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\tl2-category\timage\tsplit\n"
        "0\tWhat is shown?\tnan\tA shoe\tA hat\t\t\tA\tattribute\tperception\t" + b64 + "\tdev\n"
        "1\t\"Which, \"\"quoted\"\"\nline?\"\tA hint\tx\ty\tz\t\tC\tcount\tperception\t0\tdev\n"
        "2\tNo answer (test split)\t\tp\tq\tr\ts\t\tcount\treasoning\t0\ttest\n"}},
      {"eval-tsv-mmstar", Bench::MMStar, "mmstar.tsv",
       {"index\tquestion\tanswer\tcategory\tl2_category\timage\n"
        "0\t\"Which one?\nOptions: A: one, B: two, C: three, D: four, five\"\tB\tcoarse perception\tscene\t" + b64 + "\n"
        "1\t\"How many?\nOptions: A: 1, B: 2\"\tA\tinstance reasoning\tcount\t0\n"}},
      {"eval-json-scienceqa", Bench::ScienceQA, "problems.json",
       {R"({"101": {"question": "Which is a solid?", "choices": ["milk", "rock"], "answer": 1, "hint": "", "image": "a.png",
  "split": "test", "subject": "natural science", "grade": "grade3", "topic": "physics"},
 "102": {"question": "Text only", "choices": ["a", "b"], "answer": 0, "image": null, "split": "test"},
 "103": {"question": "Which?", "choices": ["x", "y", "z"], "answer": "2", "hint": "Look.", "image": "a.png", "split": "test"},
 "104": {"question": "Train", "choices": ["a", "b"], "answer": 0, "image": "a.png", "split": "train"}})"}},
      {"eval-json-ai2d", Bench::AI2D, "ai2d_test.json",
       {R"([{"question": "Which label?", "imageName": "a.png",
   "metadata": {"questionId": "q1", "answerTexts": ["x", "y", "z"], "correctAnswer": "1", "abcLabel": false}},
  {"question": "Which letter?", "imageName": "a.png",
   "metadata": {"questionId": 7, "answerTexts": ["A", "B", "C", "D"], "correctAnswer": 3, "abcLabel": true}}])"}},
      {"eval-json-seed", Bench::SEED, "SEED-Bench.json",
       {R"({"questions": [{"question_id": "1", "question": "How many?", "choice_a": "1", "choice_b": "2", "choice_c": "3",
   "choice_d": "4", "answer": "B", "data_id": "a.png", "question_type_id": 5, "data_type": "image"},
  {"question_id": "2", "question": "Video", "choice_a": "1", "choice_b": "2", "choice_c": "3", "choice_d": "4",
   "answer": "A", "data_id": "v.mp4", "question_type_id": 10, "data_type": "video"},
  {"question_id": 3, "question": "Where?", "choice_a": "left", "choice_b": "right", "choice_c": "up", "choice_d": "down",
   "answer": "D", "data_id": "b.jpg", "question_type_id": 3}],
 "question_type": {"Instances Counting": 5, "Instance Location": 3}})"}},
      {"eval-json-chartqa", Bench::ChartQA, "test_human.json",
       {R"([{"imgname": "a.png", "query": "What is the value?", "label": "12"},
  {"imgname": "b.jpg", "query": "Which color?", "label": ["Red"]}, {"imgname": "a.png", "query": "Sum?", "label": 3.5}])"}},
      {"eval-json-hallusionbench", Bench::HallusionBench, "HallusionBench.json",
       {R"([{"category": "VS", "subcategory": "chart", "set_id": "0", "figure_id": "0", "question_id": "0",
   "question": "Is it?", "gt_answer": "1", "filename": "./a.png", "visual_input": "1"},
  {"category": "VD", "subcategory": "math", "set_id": 1, "figure_id": 0, "question_id": 1, "question": "No image?",
   "gt_answer": "0", "filename": null, "visual_input": "0"}])"}},
      {"eval-json-mathvista", Bench::MathVista, "testmini.json",
       {R"({"1": {"pid": "1", "query": "Hint: answer with a number.\nQuestion: How many?", "image": "a.png", "answer": "2",
   "metadata": {"task": "figure question answering"}},
 "2": {"pid": "2", "query": "Which?", "image": "b.jpg", "answer": "B", "choices": ["A", "B"], "metadata": {"task": "math"}}})",
        R"([{"pid": "7", "query": "List form", "image": "a.png", "answer": "1"}])"}},
      {"eval-json-mmvet", Bench::MMVet, "mm-vet.json",
       {R"({"v1_0": {"imagename": "a.png", "capability": ["ocr", "math"], "question": "What is 2+2?", "answer": "4"},
 "v1_1": {"imagename": "b.jpg", "capability": ["rec"], "question": "What is it?", "answer": "A cat<OR>cat"}})"}},
      {"eval-json-mathverse", Bench::MathVerse, "testmini.json",
       {R"([{"sample_index": "1", "problem_index": "1", "problem_version": "Text Dominant", "question": "Q1",
   "image": "a.png", "answer": "A", "query_wo": "Question: Q1"},
  {"sample_index": 2, "problem_index": "1", "problem_version": "Vision Only", "question": "", "image": "b.jpg",
   "answer": "3", "query_wo": "Answer the question in the image."}])"}},
      {"eval-json-seed2plus", Bench::SEED2Plus, "seed2plus.json",
       {R"([{"question_id": "text_0", "question": "Which?", "choice_A": "a", "choice_B": "b", "choice_C": "c",
   "choice_D": "d", "answer": "C", "data_id": "a.png", "question_image_type": "chart"},
  {"question_id": 7, "question": "Where?", "choice_a": "1", "choice_b": "2", "choice_c": "3", "choice_d": "4",
   "answer": "A", "data_id": "b.jpg", "question_image_type": "map"}])",
        R"({"questions": [{"question_id": "w1", "question": "Q", "choice_A": "a", "choice_B": "b", "choice_C": "c",
   "choice_D": "d", "answer": "D", "data_id": "a.png"}]})"}},
      {"eval-json-mmvet2", Bench::MMVet2, "mm-vet-v2.json",
       {R"({"v2_0": {"question": "Compare <IMG>a.png<IMG> and <IMG>b.jpg<IMG> please", "answer": "x", "capability": ["rec"]},
 "v2_1": {"question": "<IMG>a.png<IMG>What is it?", "answer": "a shoe", "capability": ["rec", "know"]}})"}},
      {"eval-jsonl-pope", Bench::POPE, "coco_pope_random.jsonl",
       {"{\"question_id\": 1, \"image\": \"a.png\", \"text\": \"Is there a cat in the image?\", \"label\": \"yes\"}\n"
        "{\"question_id\": 2, \"image\": \"b.jpg\", \"text\": \"Is there a dog?\", \"label\": \"No\"}\n\n"}},
      {"eval-jsonl-llavaw", Bench::LLaVAW, "questions.jsonl",
       {"{\"question_id\": 0, \"image\": \"a.png\", \"text\": \"Describe the image.\", \"category\": \"detail\"}\n"
        "{\"question_id\": 1, \"image\": \"b.jpg\", \"text\": \"Why?\", \"category\": \"complex\"}\n"}},
      {"eval-jsonl-cvbench", Bench::CVBench, "test.jsonl",
       {"{\"idx\": 0, \"type\": \"2D\", \"task\": \"Count\", \"image\": \"a.png\", \"prompt\": \"How many?\", "
        "\"choices\": [\"1\", \"2\", \"3\"], \"answer\": \"(B)\", \"source\": \"ADE20K\"}\n"
        "{\"idx\": 1, \"type\": \"3D\", \"task\": \"Depth\", \"image\": \"b.jpg\", \"prompt\": \"Which is closer?\", "
        "\"choices\": [1, 2], \"answer\": \"(A)\", \"source\": \"Omni3D\"}\n"}},
      {"eval-parquet-visualwebbench", Bench::VisualWebBench, "data.jsonl",
       {"{\"id\": \"0\", \"task_type\": \"web_caption\", \"website\": \"example.com\", \"image\": \"a.png\", \"answer\": \"A page\"}\n"
        "{\"id\": \"1\", \"task_type\": \"webqa\", \"image\": \"a.png\", \"question\": \"Q?\", \"answer\": [\"x\", \"y\"]}\n"
        "{\"id\": \"2\", \"task_type\": \"element_ocr\", \"image\": \"b.jpg\", \"bbox\": [0.1, 0.2, 0.3, 0.4], \"answer\": \"text\"}\n"
        "{\"id\": \"3\", \"task_type\": \"action_prediction\", \"image\": \"a.png\", \"bbox\": [0, 0, 1, 1], "
        "\"options\": [\"a\", \"b\"], \"answer\": 1}\n"
        "{\"id\": \"4\", \"task_type\": \"element_ground\", \"image\": \"a.png\", \"elem_desc\": \"button\", \"answer\": 0}\n"
        "{\"id\": \"5\", \"task_type\": \"action_ground\", \"image\": \"a.png\", \"instruction\": \"click\", \"answer\": 7}\n"
        "{\"id\": \"6\", \"task_type\": \"heading_ocr\", \"image\": \"a.png\", \"answer\": \"Title\"}\n"}},
      {"eval-parquet-blink", Bench::BLINK, "data.jsonl",
       {"{\"idx\": \"val_Art_Style_1\", \"sub_task\": \"Art_Style\", \"image_1\": \"a.png\", \"image_2\": \"b.jpg\", "
        "\"image_3\": null, \"image_4\": null, \"choices\": [\"(A) first\", \"(B) second\"], \"prompt\": \"Which?\", "
        "\"answer\": \"(A)\"}\n"
        "{\"idx\": \"val_Counting_1\", \"sub_task\": \"Counting\", \"image_1\": \"a.png\", \"image_2\": null, "
        "\"image_3\": null, \"image_4\": null, \"choices\": [\"1\", \"2\", \"3\", \"4\"], \"prompt\": \"How many?\", "
        "\"answer\": \"(D)\"}\n"}},
  };
}

// What the generation and the scorers assume of every item a reader returns.
void check_items(eval::Bench b, const eval::ReadResult& r) {
  for (const auto& it : r.items) {
    if (it.id.empty()) throw std::logic_error("an item without an id");
    if (!it.options.empty() && it.answer.size() == 1 && it.answer[0] >= 'A' && it.answer[0] <= 'Z' &&
        b != eval::Bench::MathVista && b != eval::Bench::MathVerse && b != eval::Bench::MMVet &&
        size_t(it.answer[0] - 'A') >= it.options.size())
      throw std::logic_error("item " + it.id + ": answer " + it.answer + " is not one of its options");
    try {
      const auto prompt = eval::build_prompt(b, it);
      if (prompt.max_new_tokens <= 0) throw std::logic_error("no new tokens");
    } catch (const std::exception& e) {
      throw std::logic_error("item " + it.id + " was accepted, but its prompt fails: " + e.what());
    }
  }
}

}  // namespace

std::vector<Target> eval_targets(const fs::path& dir, const fs::path& images, const std::string& png) {
  // The image layouts the readers resolve under their image root: flat (most), <split>/<pid>/ (ScienceQA),
  // images/ and abc_images/ (AI2D).
  const fs::path root = dir / "eval-images";
  for (const auto& sub : {fs::path(), fs::path("test/101"), fs::path("test/103"), fs::path("images"), fs::path("abc_images")}) {
    fs::create_directories(root / sub);
    for (const char* f : {"a.png", "b.jpg"}) fs::copy_file(images / f, root / sub / f, fs::copy_options::overwrite_existing);
  }
  std::vector<Target> out;
  for (auto& s : eval_seeds(png)) {
    const fs::path d = dir / s.target;
    fs::create_directories(d);
    Target t{s.target, s.seeds, nullptr, s.file};
    int64_t* n = new int64_t(0);  // alternates the policies (lives as long as the process)
    const bool two_files = s.bench == eval::Bench::MathVerse;  // the second file's ids are offset by the first's size
    const fs::path p = d / s.file, p2 = d / "testmini_text_only.json";
    if (two_files) t.file_shown = "testmini";
    t.run = [p, p2, two_files, root, n, b = s.bench](const std::string& input) {
      write(p, input);
      std::vector<std::string> files = {p.string()};
      if (two_files) write(p2, input), files.push_back(p2.string());
      eval::ReadOptions opt;
      opt.image_root = root.string();
      opt.skip_bad_rows = *n % 2 == 1;
      opt.decode_images = *n % 4 >= 2;
      ++*n;
      check_items(b, eval::read_benchmark(b, files, opt));
    };
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace phantom::fuzz
