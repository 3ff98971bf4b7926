// VisualWebBench and BLINK: tiny parquet files in the Hugging Face layouts are written with pyarrow, converted by
// scripts/parquet_to_jsonl.py, read, prompted and scored; the ROUGE scores and Python list formatting are compared
// with the rouge package and str() themselves (tests/tools/parquet_sets.py). Expected scores are worked out by hand.
#include <cstdlib>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "tests/helpers.h"
#include "trainers/eval/benchmarks.h"

using namespace phantom::eval;
using nlohmann::json;
using phantom::test::TempDir;

namespace {

std::string tool() { return std::string(PHANTOM_PYTHON) + " " + phantom::test::source_path("tests/tools/parquet_sets.py"); }

void sh(const std::string& cmd) {
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
}

// Parquet fixtures -> data.jsonl + images for both sets, under d.
void convert_fixtures(const TempDir& d) {
  sh(tool() + " fixtures " + d.str("pq"));
  const std::string conv = std::string(PHANTOM_PYTHON) + " " + phantom::test::source_path("scripts/parquet_to_jsonl.py");
  sh(conv + " " + d.str("pq/VisualWebBench") + " --out " + d.str("vwb") + " > /dev/null");
  sh(conv + " " + d.str("pq/BLINK") + " --out " + d.str("blink") + " > /dev/null");
}

ReadOptions skip() {
  ReadOptions o;
  o.skip_bad_rows = true;
  return o;
}

const BenchItem& find(const std::vector<BenchItem>& items, const std::string& id) {
  for (const auto& x : items)
    if (x.id == id) return x;
  FAIL("no item " << id);
  throw;
}

}  // namespace

TEST_CASE("bench conv: ROUGE and Python list formatting match the rouge package and str()") {
  // Golden values by hand: "the cat sat" vs "the cat sat on the mat": 3 of 3 hypothesis words and 3 of 5 distinct
  // reference words -> F = 2 * 1 * 0.6 / 1.6 = 0.75; bigrams 2 of 2 and 2 of 5 -> 0.5714; LCS {the, cat, sat} -> 0.75.
  const auto f = rouge_f("the cat sat", "the cat sat on the mat");
  REQUIRE(f);
  CHECK(f->rouge_1 == Approx(0.75).epsilon(1e-6));
  CHECK(f->rouge_2 == Approx(2 * 0.4 / 1.4).epsilon(1e-6));
  CHECK(f->rouge_l == Approx(0.75).epsilon(1e-6));
  CHECK_FALSE(rouge_f(".", "x"));  // the package raises: no sentence left
  CHECK_FALSE(rouge_f("x", ""));

  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"the cat sat", "the cat sat on the mat"},
      {"A quick brown fox. Jumps over the dog.", "The quick brown fox jumps. Over the lazy dog"},
      {"a b a b c", "b a c a b a"},          // repeated words: sets, and the LCS reconstruction's tie-breaking
      {"x y z. z y x", "z y x. x y z. q"},  // several sentences on both sides: the union of LCS words
      {" ", "Welcome Home"},                 // the official " " for an empty answer
      {"  spaced   out  ", "spaced out"},
      {".", "x"},
      {"Shop now!", "shop NOW"},  // case and punctuation are kept
  };
  const std::vector<std::vector<double>> floats = {{0.1, 0.25, 0.5, 1.0}, {1e-05, 0.0001, 123.456, 1e16}, {-0.0, 2.5e-7}};
  const std::vector<std::vector<std::string>> strings = {{"Sam's Club", "Cart"}, {"say \"hi\"", "both ' and \""},
                                                         {"tab\there", "back\\slash", "new\nline"}};
  TempDir d;
  json q{{"rouge", json::array()}, {"floats", floats}, {"strings", strings}};
  for (const auto& [h, r] : pairs) q["rouge"].push_back({h, r});
  const std::string in = d.file("q.json", q.dump());
  sh(tool() + " reference " + in + " > " + d.str("ref.json"));
  std::ifstream fin(d.str("ref.json"));
  const json ref = json::parse(fin);
  for (size_t i = 0; i < pairs.size(); ++i) {
    INFO("pair " << i << ": '" << pairs[i].first << "' vs '" << pairs[i].second << "'");
    const auto mine = rouge_f(pairs[i].first, pairs[i].second);
    REQUIRE(ref["rouge"][i].is_null() == !mine.has_value());
    if (!mine) continue;
    CHECK(mine->rouge_1 == Approx(ref["rouge"][i][0].get<double>()).margin(1e-12));
    CHECK(mine->rouge_2 == Approx(ref["rouge"][i][1].get<double>()).margin(1e-12));
    CHECK(mine->rouge_l == Approx(ref["rouge"][i][2].get<double>()).margin(1e-12));
  }
  for (size_t i = 0; i < floats.size(); ++i) CHECK(py_list_repr(floats[i]) == ref["floats"][i].get<std::string>());
  for (size_t i = 0; i < strings.size(); ++i) CHECK(py_list_repr(strings[i]) == ref["strings"][i].get<std::string>());
}

TEST_CASE("bench conv: VisualWebBench choice parse as the official script") {
  CHECK(visualwebbench_choice("b") == 1);             // one character, upper-cased
  CHECK(visualwebbench_choice("C. the cart") == 2);   // "X." at the start
  CHECK(visualwebbench_choice("(D) maybe (B)") == 1); // brackets, the last one
  CHECK(visualwebbench_choice("I choose B and then A") == 0);  // " X ": the last one
  CHECK(visualwebbench_choice("It is B.") == 1);      // punctuation dropped before the search
  CHECK_FALSE(visualwebbench_choice(""));
  CHECK_FALSE(visualwebbench_choice("none of them"));
  CHECK_FALSE(visualwebbench_choice("7"));
  CHECK(blink_choice("The answer is (C) 3") == "C");
  CHECK(blink_choice("B") == "B");
  CHECK(blink_choice("A.") == "A.");  // no "(x)": the whole answer, which then does not equal "A"
}

TEST_CASE("bench conv: VisualWebBench parquet -> JSONL -> items, prompts, per-task scores") {
  TempDir d;
  convert_fixtures(d);
  const auto r = read_visualwebbench(d.str("vwb/data.jsonl"), skip());
  // 11 rows; element_ocr/1 has a 3-number bbox.
  REQUIRE(r.items.size() == 10);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].row == "element_ocr/1");
  CHECK_THROWS_WITH(read_visualwebbench(d.str("vwb/data.jsonl")), Catch::Contains("element_ocr/1"));

  const auto& ap = find(r.items, "action_prediction/0");
  CHECK(ap.answer == "B");
  CHECK(ap.images.size() == 1);
  const auto p = build_prompt(Bench::VisualWebBench, ap);
  CHECK(p.max_new_tokens == 512);
  CHECK(p.text ==
        "<image>You are given a screenshot of a webpage with a red rectangle bounding box. The [x1, y1, x2, y2] "
        "coordinates of the bounding box is [0.1, 0.25, 0.5, 1.0].\nPlease select the best webpage description that "
        "matches the new webpage after clicking the selected element in the bounding box:\n[\"Sam's Club: Home\", "
        "'Cart']\n\nYou should directly tell me your choice in a single uppercase letter, and do not output any "
        "explanation or any other contents.\n");
  CHECK(build_prompt(Bench::VisualWebBench, find(r.items, "action_prediction/1")).text.find("[1e-05, 0.5, 0.75, 0.875]") !=
        std::string::npos);
  CHECK(build_prompt(Bench::VisualWebBench, find(r.items, "webqa/0")).text ==
        "<image>Which city?\nYou should directly tell me your answer in the fewest words possible, and do not output "
        "any explanation or any other contents.\n");
  CHECK(build_prompt(Bench::VisualWebBench, find(r.items, "element_ground/0")).text.find("description: the search box\n\n") !=
        std::string::npos);
  CHECK(build_prompt(Bench::VisualWebBench, find(r.items, "action_ground/0")).text.find("task: open the cart\n\n") !=
        std::string::npos);

  const auto rep = score_benchmark(Bench::VisualWebBench, "visualwebbench", r.items,
                                   {{"web_caption/0", "the cat sat"},
                                    {"heading_ocr/0", "Welcome Home"},  // heading_ocr/1 unanswered -> " " -> 0
                                    {"webqa/0", "paris, france"},        // equal to the second acceptable answer
                                    {"webqa/1", "."},                    // the package raises: left out of the mean
                                    {"element_ocr/0", "Sign in"},
                                    {"element_ground/0", "C"},
                                    {"action_prediction/0", "(B)"},
                                    {"action_prediction/1", "I choose B and then A"},
                                    {"action_ground/0", "b"}});  // B, the answer is A
  // caption ROUGE-L 75 (as above); heading (100 + 0) / 2 = 50; WebQA 100 over its one scored item; element OCR 100;
  // element grounding 100; action prediction 2/2; action grounding 0. Average of the seven: 525 / 7 = 75.
  CHECK(rep.metrics.at("web_caption/rouge_l") == Approx(75.0).epsilon(1e-6));
  CHECK(rep.metrics.at("web_caption/rouge_1") == Approx(75.0).epsilon(1e-6));
  CHECK(rep.metrics.at("heading_ocr/rouge_l") == Approx(50.0).epsilon(1e-6));
  CHECK(rep.metrics.at("heading_ocr/n") == 2);
  CHECK(rep.metrics.at("webqa/f1") == Approx(100.0).epsilon(1e-6));
  CHECK(rep.metrics.at("element_ocr/rouge_l") == Approx(100.0).epsilon(1e-6));
  CHECK(rep.metrics.at("element_ground/accuracy") == Approx(100.0));
  CHECK(rep.metrics.at("action_prediction/accuracy") == Approx(100.0));
  CHECK(rep.metrics.at("action_ground/accuracy") == Approx(0.0));
  CHECK(rep.metrics.at("average") == Approx(75.0).epsilon(1e-6));
  CHECK(rep.headline == "average");
  CHECK(rep.missing == 1);
}

TEST_CASE("bench conv: BLINK parquet -> JSONL -> items with 1-4 images, disclaimer, subtask mean") {
  TempDir d;
  convert_fixtures(d);
  const auto r = read_blink(d.str("blink/data.jsonl"), skip());
  REQUIRE(r.items.size() == 5);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].row == "val_Counting_4");  // a hidden (test-split style) answer
  const auto& art = find(r.items, "val_Art_Style_1");
  REQUIRE(art.images.size() == 3);
  CHECK(art.images[1].path.find(".jpg") != std::string::npos);
  CHECK(art.images[1].decode().width == 4);
  CHECK(art.answer == "A");
  CHECK(art.category == "Art_Style");
  const std::string p = build_prompt(Bench::BLINK, art).text;
  CHECK(p.rfind("<image>Disclaimer: This is not to make unfair assumptions", 0) == 0);
  CHECK(p.find("analyze based on the information I gave you.\n\nWhich one?\nSelect from the following choices.\n(A) "
               "the second image\n(B) the third image") != std::string::npos);
  CHECK(build_prompt(Bench::BLINK, find(r.items, "val_Counting_1")).text ==
        "<image>Which one?\nSelect from the following choices.\n(A) 1\n(B) 2\n(C) 3\n(D) 4");
  CHECK(build_prompt(Bench::BLINK, art).max_new_tokens == 5);
  // Art_Style: (A) right, "B" right -> 100. Counting: "(C) 3" right, "A." wrong, unanswered wrong -> 33.3.
  // Mean over the two subtasks 66.7; over all items 3 / 5 = 60.
  const auto rep = score_benchmark(Bench::BLINK, "blink", r.items,
                                   {{"val_Art_Style_1", "(A)"}, {"val_Art_Style_2", "B"},
                                    {"val_Counting_1", "The answer is (C) 3"}, {"val_Counting_2", "A."}});
  CHECK(rep.metrics.at("accuracy/Art_Style") == Approx(100.0));
  CHECK(rep.metrics.at("accuracy/Counting") == Approx(100.0 / 3));
  CHECK(rep.metrics.at("subtask_mean") == Approx(200.0 / 3));
  CHECK(rep.metrics.at("accuracy") == Approx(60.0));
  CHECK(rep.headline == "subtask_mean");
  CHECK(bench_from_name("blink") == Bench::BLINK);
  CHECK(bench_from_name("vwb") == Bench::VisualWebBench);
  CHECK_FALSE(bench_is_judged(Bench::BLINK));
}

TEST_CASE("bench conv: converter errors name the input") {
  TempDir d;
  const std::string conv = std::string(PHANTOM_PYTHON) + " " + phantom::test::source_path("scripts/parquet_to_jsonl.py");
  const std::string bad = d.file("bad.parquet", "not parquet");
  CHECK(std::system((conv + " " + bad + " --out " + d.str("o") + " 2> " + d.str("err.txt")).c_str()) != 0);
  std::ifstream f(d.str("err.txt"));
  const std::string err{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  CHECK(err.find("bad.parquet") != std::string::npos);
  CHECK(std::system((conv + " " + d.str("nothing") + " --out " + d.str("o") + " 2> /dev/null").c_str()) != 0);
}
