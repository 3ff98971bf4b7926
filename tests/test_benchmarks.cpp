// Benchmark readers, prompts and scorers (trainers/eval/benchmarks.h). Every benchmark gets a tiny fixture in its
// published format, written here with generated PNGs, known model answers, and scores checked by hand (the
// arithmetic is in the comments). Bad rows and missing images must be reported with their row ids.
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "tests/helpers.h"
#include "trainers/eval/benchmarks.h"

using namespace phantom::eval;
using nlohmann::json;
using phantom::test::TempDir;

namespace {

std::string png(int w = 8, int h = 6, int shade = 128) {
  cv::Mat m(h, w, CV_8UC3, cv::Scalar(shade, 255 - shade, 40));
  std::vector<uchar> buf;
  cv::imencode(".png", m, buf);
  return std::string(buf.begin(), buf.end());
}

std::string base64(const std::string& bytes) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

void write_png(const TempDir& d, const std::string& rel, int w = 8, int h = 6) {
  std::filesystem::create_directories((d.path / rel).parent_path());
  std::ofstream(d.path / rel, std::ios::binary) << png(w, h);
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

ReadOptions skip() {
  ReadOptions o;
  o.skip_bad_rows = true;
  return o;
}

std::set<std::string> error_rows(const ReadResult& r) {
  std::set<std::string> s;
  for (const auto& e : r.errors) s.insert(e.row);
  return s;
}

const ItemResult& item(const BenchReport& r, const std::string& id) {
  for (const auto& x : r.items)
    if (x.id == id) return x;
  FAIL("no item " << id);
  throw;
}

std::string tsv(const std::vector<std::vector<std::string>>& rows) {
  std::string s;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) s += (i ? "\t" : "") + r[i];
    s += "\n";
  }
  return s;
}

}  // namespace

TEST_CASE("bench: option letters are read from free-form answers") {
  const std::vector<std::string> o = {"cat", "dog", "red apple", "apple"};
  auto ex = [&](const std::string& s) { return extract_option(s, o); };
  CHECK(ex("B") == 1);
  CHECK(ex("B.") == 1);
  CHECK(ex("(B)") == 1);
  CHECK(ex("[C]") == 2);
  CHECK(ex(" D) ") == 3);
  CHECK(ex("b") == 1);
  CHECK(ex("B. dog") == 1);
  CHECK(ex("(C) red apple") == 2);
  CHECK(ex("The answer is B") == 1);
  CHECK(ex("The answer is (D).") == 3);
  CHECK(ex("Answer: A") == 0);
  CHECK(ex("dog") == 1);
  CHECK(ex("Dog.") == 1);
  CHECK(ex("It is a dog") == 1);
  CHECK(ex("a red apple") == 2);  // "apple" is only inside the longer matching option
  CHECK(ex("A dog") == 1);        // the article, then the option text
  CHECK(ex("I think D") == 3);
  CHECK_FALSE(ex("E"));           // four options: E is not one
  CHECK_FALSE(ex(""));
  CHECK_FALSE(ex("B or C"));      // two letters: ambiguous
  CHECK_FALSE(ex("a horse"));
}

TEST_CASE("bench: MMBench dev TSV: hint, image references, quoting, circular accuracy, bad rows") {
  TempDir d;
  const std::string img = base64(png(8, 6)), img2 = base64(png(5, 4, 10));
  const std::vector<std::string> head = {"index", "question", "hint", "A", "B", "C", "D", "answer", "category",
                                         "image", "source", "l2-category", "comment", "split"};
  const std::string path = d.file(
      "mmbench_dev.tsv",
      tsv({head,
           {"0", "What color?", "A hint", "red", "green", "blue", "black", "B", "cat1", img, "s", "L2", "nan", "dev"},
           {"1", "Which shape?", "nan", "circle", "square", "triangle", "", "A", "cat2", "0", "s", "L2", "", "dev"},
           // quoted question holding a tab and a newline; quote doubled inside
           {"2", "\"What is\tthis \"\"thing\"\"?\nSecond line\"", "", "x", "y", "z", "w", "C", "cat3", img2, "s",
            "L2", "", "dev"},
           {"1000000", "What color?", "A hint", "green", "blue", "black", "red", "A", "cat1", "0", "s", "L2", "",
            "dev"},
           {"5", "Bad answer?", "", "a", "b", "c", "d", "E", "cat1", img, "s", "L2", "", "dev"},
           {"6", "Bad image?", "", "a", "b", "c", "d", "A", "cat1", "!!!notbase64!!!", "s", "L2", "", "dev"},
           {"7", "too", "few", "fields"},
           {"8", "Gap?", "", "a", "", "c", "", "A", "cat1", img, "s", "L2", "", "dev"}}));

  SECTION("bad rows fail the read by default, naming the row ids") {
    try {
      read_mmbench(path);
      FAIL("expected an error");
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      INFO(m);
      CHECK(m.find("mmbench_dev.tsv") != std::string::npos);
      CHECK(m.find("row 5") != std::string::npos);
      CHECK(m.find("row 6") != std::string::npos);
      CHECK(m.find("row 8") != std::string::npos);
      CHECK(m.find('\n') == std::string::npos);
    }
  }

  const ReadResult r = read_mmbench(path, skip());
  REQUIRE(r.items.size() == 4);
  // the row with too few fields is named by its line: header 1, rows 2-3, row "2" spans 4-5 (quoted newline),
  // then 6, 7, 8, so line 9
  CHECK(error_rows(r) == std::set<std::string>{"5", "6", "8", "line 9"});

  const BenchItem& a = r.items[0];
  CHECK(a.id == "0");
  CHECK(a.options == std::vector<std::string>{"red", "green", "blue", "black"});
  CHECK(a.answer == "B");
  CHECK(a.category == "cat1");
  CHECK(a.extra.at("l2-category") == "L2");
  const BenchPrompt p = build_prompt(Bench::MMBench, a);
  CHECK(p.text ==
        "<image>A hint\nWhat color?\nA. red\nB. green\nC. blue\nD. black\n"
        "Answer with the option's letter from the given choices directly.");
  CHECK(p.max_new_tokens == 5);

  const BenchItem& b = r.items[1];
  CHECK(b.options.size() == 3);  // D empty -> three options
  CHECK(b.extra.count("hint") == 0);  // "nan" is pandas' NaN
  CHECK(build_prompt(Bench::MMBench, b).text ==
        "<image>Which shape?\nA. circle\nB. square\nC. triangle\n"
        "Answer with the option's letter from the given choices directly.");
  REQUIRE(b.images.size() == 1);
  CHECK(b.images[0].decode().width == 8);  // row "0"'s image, by reference

  const BenchItem& c = r.items[2];
  CHECK(c.question == "What is\tthis \"thing\"?\nSecond line");
  const auto im = c.images.at(0).decode();
  CHECK((im.width == 5 && im.height == 4));

  // 0 right, 1 wrong (says B, answer A), 2 right, 1000000 wrong:
  // accuracy 2/4 = 50; cat1 {0 right, 1000000 wrong} 50; cat2 0; cat3 100;
  // circular: question 0 (0 and 1000000) wrong, 1 wrong, 2 right -> 1/3.
  const std::map<std::string, std::string> resp = {
      {"0", "B"}, {"1", "The answer is B"}, {"2", "(C) z"}, {"1000000", "D"}};
  const BenchReport rep = score_benchmark(Bench::MMBench, "mmbench_dev", r.items, resp);
  CHECK(rep.headline == "accuracy");
  CHECK(rep.metrics.at("accuracy") == Approx(50.0));
  CHECK(rep.metrics.at("accuracy/cat1") == Approx(50.0));
  CHECK(rep.metrics.at("accuracy/cat2") == Approx(0.0));
  CHECK(rep.metrics.at("accuracy/cat3") == Approx(100.0));
  CHECK(rep.metrics.at("circular_accuracy") == Approx(100.0 / 3));
  CHECK(item(rep, "1").prediction == "B");
  CHECK(item(rep, "1").correct == false);

  SECTION("results file: atomic JSON, resume, summary") {
    const std::string out = d.str("results/mmbench_dev.json");
    std::map<std::string, std::string> partial = resp;
    partial.erase("2");
    const BenchReport part = score_benchmark(Bench::MMBench, "mmbench_dev", r.items, partial);
    CHECK(part.missing == 1);
    CHECK(part.metrics.at("accuracy") == Approx(25.0));  // the missing one counts as wrong
    write_results(out, part);
    CHECK(answered_ids(out) == std::set<std::string>{"0", "1", "1000000"});
    CHECK(read_responses(out).at("1") == "The answer is B");
    CHECK(answered_ids(d.str("results/none.json")).empty());

    const json j = json::parse(read_file(out));
    CHECK(j["benchmark"] == "mmbench_dev");
    CHECK(j["items"].size() == 4);
    CHECK(j["items"][2]["response"].is_null());
    CHECK(j["items"][0]["correct"] == true);
    CHECK(j["items"][0]["prompt"].get<std::string>().rfind("<image>A hint", 0) == 0);
    for (const auto& e : std::filesystem::directory_iterator(d.str("results")))
      CHECK(e.path().filename().string().find(".tmp") == std::string::npos);

    write_summary(d.str("results/summary.md"), {rep});
    CHECK(read_file(d.str("results/summary.md")).find("| mmbench_dev | accuracy | 50.00 | 4 | 0 |") !=
          std::string::npos);
  }
}

TEST_CASE("bench: MMBench test TSV (no answers) gives no accuracy and an upload TSV") {
  TempDir d;
  const std::string img = base64(png());
  const std::string path = d.file(
      "mmbench_test.tsv",
      tsv({{"index", "question", "hint", "A", "B", "C", "D", "category", "image", "l2-category"},
           {"11", "Q1?", "H", "a", "b", "c", "d", "cat", img, "l2"},
           {"12", "Q2?", "", "a", "b", "", "", "cat", img, "l2"}}));
  const ReadResult r = read_mmbench(path);
  REQUIRE(r.items.size() == 2);
  CHECK(r.items[0].answer.empty());
  const std::map<std::string, std::string> resp = {{"11", "C"}, {"12", "no idea"}};
  const BenchReport rep = score_benchmark(Bench::MMBench, "mmbench_test", r.items, resp);
  CHECK(rep.headline.empty());
  CHECK(rep.metrics.count("accuracy") == 0);
  write_mmbench_submission(d.str("sub.tsv"), r.items, resp);
  CHECK(read_file(d.str("sub.tsv")) ==
        "index\tquestion\thint\tA\tB\tC\tD\tprediction\tcategory\tl2-category\n"
        "11\tQ1?\tH\ta\tb\tc\td\tC\tcat\tl2\n"
        "12\tQ2?\t\ta\tb\t\t\tno idea\tcat\tl2\n");
}

TEST_CASE("bench: MMStar TSV: options parsed from the question, prompt keeps them once") {
  TempDir d;
  const std::string img = base64(png());
  const std::string q = "Which animal is shown?\nOptions: A: cat, B: dog, C: a cow, with spots, D: bird";
  const std::string quoted = "\"" + q + "\"";  // pandas quotes a field holding a newline
  const std::string path = d.file("MMStar.tsv", tsv({{"index", "question", "answer", "category", "l2_category",
                                                      "bench", "image"},
                                                     {"0", quoted, "D", "coarse perception", "x", "seed", img},
                                                     {"1", quoted, "B", "math", "y", "mmmu", img},
                                                     {"2", quoted, "", "math", "y", "mmmu", img}}));
  const ReadResult r = read_mmstar(path, skip());
  REQUIRE(r.items.size() == 2);
  CHECK(error_rows(r) == std::set<std::string>{"2"});  // no answer
  CHECK(r.items[0].options == std::vector<std::string>{"cat", "dog", "a cow, with spots", "bird"});
  CHECK(build_prompt(Bench::MMStar, r.items[0]).text ==
        "<image>" + q + "\nAnswer with the option's letter from the given choices directly.");
  // "D" right; "cat" is option A, the answer is B: 1/2
  const BenchReport rep = score_benchmark(Bench::MMStar, "mmstar", r.items, {{"0", "D"}, {"1", "cat"}});
  CHECK(rep.metrics.at("accuracy") == Approx(50.0));
  CHECK(rep.metrics.at("accuracy/coarse perception") == Approx(100.0));
  CHECK(item(rep, "1").prediction == "A");
}

TEST_CASE("bench: ScienceQA-IMG from problems.json: test split, image problems only") {
  TempDir d;
  write_png(d, "images/test/1/image.png");
  write_png(d, "images/train/3/image.png");
  write_png(d, "images/test/5/image.png");
  const json problems = {
      {"1", {{"question", "Which is a mammal?"}, {"choices", {"shark", "whale"}}, {"answer", 1}, {"hint", "Read."},
             {"image", "image.png"}, {"split", "test"}, {"subject", "natural science"}, {"grade", "grade4"}}},
      {"2", {{"question", "No image"}, {"choices", {"a", "b"}}, {"answer", 0}, {"hint", ""}, {"image", nullptr},
             {"split", "test"}, {"subject", "language science"}}},
      {"3", {{"question", "Train"}, {"choices", {"a", "b"}}, {"answer", 0}, {"hint", ""}, {"image", "image.png"},
             {"split", "train"}, {"subject", "social science"}}},
      {"4", {{"question", "Missing image"}, {"choices", {"a", "b"}}, {"answer", 0}, {"hint", ""},
             {"image", "image.png"}, {"split", "test"}, {"subject", "social science"}}},
      {"5", {{"question", "Bad answer"}, {"choices", {"a", "b"}}, {"answer", 5}, {"hint", ""},
             {"image", "image.png"}, {"split", "test"}, {"subject", "social science"}}}};
  const std::string path = d.file("problems.json", problems.dump());
  const ReadResult r = read_scienceqa(path, skip());
  REQUIRE(r.items.size() == 1);
  CHECK(error_rows(r) == std::set<std::string>{"4", "5"});
  const BenchItem& it = r.items[0];
  CHECK(it.answer == "B");
  CHECK(it.category == "natural science");
  CHECK(build_prompt(Bench::ScienceQA, it).text ==
        "<image>Read.\nWhich is a mammal?\nA. shark\nB. whale\n"
        "Answer with the option's letter from the given choices directly.");
  CHECK(score_benchmark(Bench::ScienceQA, "sqa", r.items, {{"1", "B"}}).metrics.at("accuracy") == Approx(100.0));
  CHECK_THROWS_WITH(read_scienceqa(path), Catch::Contains("row 4") && Catch::Contains("missing image"));
}

TEST_CASE("bench: AI2D (Phantom's flattened question list): abc_images, index answers") {
  TempDir d;
  write_png(d, "images/1.png");
  write_png(d, "abc_images/2.png");
  const json rows = json::array(
      {{{"question", "Which stage is shown?"}, {"imageName", "1.png"},
        {"metadata", {{"answerTexts", {"egg", "larva", "pupa", "adult"}}, {"abcLabel", false},
                      {"questionId", "1.png-0"}, {"correctAnswer", 2}}}},
       {{"question", "What does label A show?"}, {"imageName", "2.png"},
        {"metadata", {{"answerTexts", {"sun", "moon"}}, {"abcLabel", true}, {"questionId", "2.png-0"},
                      {"correctAnswer", "0"}}}},
       {{"question", "Missing"}, {"imageName", "3.png"},
        {"metadata", {{"answerTexts", {"x", "y"}}, {"abcLabel", false}, {"questionId", "3.png-0"},
                      {"correctAnswer", 0}}}}});
  const ReadResult r = read_ai2d(d.file("ai2d_test.json", rows.dump()), skip());
  REQUIRE(r.items.size() == 2);
  CHECK(error_rows(r) == std::set<std::string>{"3.png-0"});
  CHECK(r.items[0].answer == "C");
  CHECK(r.items[1].answer == "A");
  CHECK(r.items[1].images.at(0).path.find("abc_images/2.png") != std::string::npos);
  CHECK(build_prompt(Bench::AI2D, r.items[0]).text ==
        "<image>Which stage is shown?\nA. egg\nB. larva\nC. pupa\nD. adult\n"
        "Answer with the option's letter from the given choices directly.");
  // C right, "moon" = B but the answer is A: 1/2
  const BenchReport rep = score_benchmark(Bench::AI2D, "ai2d", r.items, {{"1.png-0", "C"}, {"2.png-0", "moon"}});
  CHECK(rep.metrics.at("accuracy") == Approx(50.0));
}

TEST_CASE("bench: SEED-Bench-IMG: image items only, question types as categories") {
  TempDir d;
  write_png(d, "SEED-Bench-image/a.jpg");
  write_png(d, "SEED-Bench-image/b.jpg");
  auto q = [](const std::string& id, const std::string& data, int type, const std::string& ans,
              const std::string& kind = "image") {
    return json{{"question_id", id}, {"question", "Q" + id + "?"}, {"choice_a", "one"}, {"choice_b", "two"},
                {"choice_c", "three"}, {"choice_d", "four"}, {"answer", ans}, {"data_id", data},
                {"data_type", kind}, {"question_type_id", type}};
  };
  const json seed = {{"question_type", {{"Scene Understanding", 1}, {"Instance Identity", 2}}},
                     {"questions", {q("101", "a.jpg", 1, "A"), q("102", "b.jpg", 2, "D"), q("103", "a.jpg", 1, "E"),
                                    q("104", "v.mp4", 10, "A", "video")}}};
  const ReadResult r = read_seed(d.file("SEED-Bench.json", seed.dump()), skip());
  REQUIRE(r.items.size() == 2);
  CHECK(error_rows(r) == std::set<std::string>{"103"});
  CHECK(r.items[0].category == "Scene Understanding");
  CHECK(build_prompt(Bench::SEED, r.items[1]).text ==
        "<image>Q102?\nA. one\nB. two\nC. three\nD. four\n"
        "Answer with the option's letter from the given choices directly.");
  const BenchReport rep = score_benchmark(Bench::SEED, "seed", r.items, {{"101", "A"}, {"102", "C"}});
  CHECK(rep.metrics.at("accuracy") == Approx(50.0));
  CHECK(rep.metrics.at("accuracy/Scene Understanding") == Approx(100.0));
  CHECK(rep.metrics.at("accuracy/Instance Identity") == Approx(0.0));
}

TEST_CASE("bench: POPE per split: accuracy, precision, recall, F1, yes ratio with the official yes/no rule") {
  CHECK(pope_normalize("Yes, there is a dog.") == "yes");
  CHECK(pope_normalize("No.") == "no");
  CHECK(pope_normalize("There is not a dog") == "no");
  CHECK(pope_normalize("NO") == "no");
  CHECK(pope_normalize("Nothing") == "yes");  // "no" must be a whole word
  CHECK(pope_normalize("Yes. No.") == "yes");  // first sentence only

  TempDir d;
  write_png(d, "val2014/COCO_1.jpg");
  auto line = [](int id, const std::string& label, const std::string& image = "COCO_1.jpg") {
    return json{{"question_id", id}, {"image", image}, {"text", "Is there a dog in the image?"}, {"label", label}}
               .dump() +
           "\n";
  };
  const std::string random = d.file("pope/coco_pope_random.json",
                                    line(1, "yes") + line(2, "yes") + line(3, "no") + line(4, "no"));
  const std::string adv = d.file("pope/coco_pope_adversarial.json",
                                 line(1, "yes") + line(2, "no") + "{not json\n" + line(4, "maybe") +
                                     line(5, "no", "COCO_missing.jpg"));
  ReadOptions opt = skip();
  opt.image_root = d.str("val2014");
  const ReadResult r = read_pope({random, adv}, opt);
  REQUIRE(r.items.size() == 6);
  CHECK(error_rows(r) == std::set<std::string>{"line 3", "adversarial/4", "adversarial/5"});
  CHECK(r.items[0].id == "random/1");
  CHECK(build_prompt(Bench::POPE, r.items[0]).text ==
        "<image>Is there a dog in the image?\nAnswer the question using a single word or phrase.");
  CHECK_THROWS_WITH(read_pope({d.file("pope/questions.jsonl", line(1, "yes"))}, opt), Catch::Contains("split"));

  // random: predictions yes, no, no, yes against yes, yes, no, no -> TP 1, FN 1, TN 1, FP 1:
  //   accuracy 50, precision 1/2, recall 1/2, F1 50, yes ratio 2/4.
  // adversarial: yes, no against yes, no -> accuracy 100, precision 100, recall 100, F1 100, yes ratio 50.
  const std::map<std::string, std::string> resp = {
      {"random/1", "Yes, there is a dog."}, {"random/2", "No."}, {"random/3", "There is no dog"},
      {"random/4", "Yes"}, {"adversarial/1", "yes"}, {"adversarial/2", "not at all"}};
  const BenchReport rep = score_benchmark(Bench::POPE, "pope", r.items, resp);
  CHECK(rep.metrics.at("random/accuracy") == Approx(50.0));
  CHECK(rep.metrics.at("random/precision") == Approx(50.0));
  CHECK(rep.metrics.at("random/recall") == Approx(50.0));
  CHECK(rep.metrics.at("random/f1") == Approx(50.0));
  CHECK(rep.metrics.at("random/yes_ratio") == Approx(50.0));
  CHECK(rep.metrics.at("adversarial/accuracy") == Approx(100.0));
  CHECK(rep.metrics.at("adversarial/f1") == Approx(100.0));
  CHECK(rep.metrics.at("adversarial/yes_ratio") == Approx(50.0));
  CHECK(rep.metrics.at("accuracy") == Approx(75.0));  // mean over the two splits
  CHECK(rep.metrics.at("f1") == Approx(75.0));
  CHECK(rep.headline == "accuracy");
}

TEST_CASE("bench: MME folder layout: acc, acc+ per image, perception and cognition sums") {
  CHECK(mme_normalize("Yes") == "yes");
  CHECK(mme_normalize("yes, it is") == "yes");
  CHECK(mme_normalize("No") == "no");
  CHECK(mme_normalize("Maybe") == "other");

  TempDir d;
  const std::string root = d.str("MME_Benchmark_release_version");
  // existence: images and .txt side by side
  write_png(d, "MME_Benchmark_release_version/existence/e1.png");
  write_png(d, "MME_Benchmark_release_version/existence/e2.png");
  d.file("MME_Benchmark_release_version/existence/e1.txt",
         "Is there a dog in this image? Please answer yes or no.\tYes\n"
         "Is there a cat in this image? Please answer yes or no.\tNo\n");
  d.file("MME_Benchmark_release_version/existence/e2.txt",
         "Is there a car in this image? Please answer yes or no.\tYes\r\n"
         "Is there a bus in this image? Please answer yes or no.\tNo\r\n");
  d.file("MME_Benchmark_release_version/existence/e3.txt", "Is there a tree? Please answer yes or no.\tYes\n");
  // artwork: images/ + questions_answers_YN/
  write_png(d, "MME_Benchmark_release_version/artwork/images/a1.jpg");
  d.file("MME_Benchmark_release_version/artwork/questions_answers_YN/a1.txt",
         "Is this artwork by Monet? Please answer yes or no.\tYes\n"
         "Is this artwork by Picasso? Please answer yes or no.\tNo\n"
         "A line without an answer\n");
  write_png(d, "MME_Benchmark_release_version/code_reasoning/c1.png");
  d.file("MME_Benchmark_release_version/code_reasoning/c1.txt",
         "Does this code print 3? Please answer yes or no.\tYes\nDoes this code print 4? Please answer yes or no.\tNo\n");

  const ReadResult r = read_mme(root, skip());
  REQUIRE(r.items.size() == 8);
  CHECK(error_rows(r) == std::set<std::string>{"existence/e3", "artwork/a1 line 3"});
  const BenchItem& first = r.items[0];  // artwork comes after existence in the category order
  CHECK(first.id == "existence/e1.png#0");
  CHECK(first.answer == "yes");
  CHECK(build_prompt(Bench::MME, first).text == "<image>Is there a dog in this image? Please answer yes or no.");

  // existence: e1 both right; e2 first wrong -> acc 3/4 = 75, acc+ 1/2 = 50 -> 125
  // artwork:   a1 first right ("yes, it is"), second wrong -> acc 50, acc+ 0 -> 50
  // code_reasoning: both right -> 100 + 100 = 200
  // perception = 125 + 50 = 175, cognition = 200, total 375
  const std::map<std::string, std::string> resp = {
      {"existence/e1.png#0", "Yes"}, {"existence/e1.png#1", "No"},          {"existence/e2.png#0", "No"},
      {"existence/e2.png#1", "No"},  {"artwork/a1.jpg#0", "yes, it is"},     {"artwork/a1.jpg#1", "Yes"},
      {"code_reasoning/c1.png#0", "Yes"}, {"code_reasoning/c1.png#1", "no"}};
  const BenchReport rep = score_benchmark(Bench::MME, "mme", r.items, resp);
  CHECK(rep.metrics.at("existence/acc") == Approx(75.0));
  CHECK(rep.metrics.at("existence/acc_plus") == Approx(50.0));
  CHECK(rep.metrics.at("existence/score") == Approx(125.0));
  CHECK(rep.metrics.at("artwork/score") == Approx(50.0));
  CHECK(rep.metrics.at("code_reasoning/score") == Approx(200.0));
  CHECK(rep.metrics.at("perception") == Approx(175.0));
  CHECK(rep.metrics.at("cognition") == Approx(200.0));
  CHECK(rep.metrics.at("total") == Approx(375.0));
  CHECK(rep.headline == "total");
}

TEST_CASE("bench: ChartQA relaxed accuracy: 5% boundaries, percent signs, zero targets, exact strings") {
  CHECK(relaxed_correct("105", "100"));      // exactly 5%
  CHECK(relaxed_correct("95", "100"));
  CHECK_FALSE(relaxed_correct("105.1", "100"));
  CHECK_FALSE(relaxed_correct("94.9", "100"));
  CHECK(relaxed_correct("42", "40"));        // 2/40 = 5% exactly
  CHECK_FALSE(relaxed_correct("42.01", "40"));
  CHECK(relaxed_correct("-10.5", "-10"));
  CHECK(relaxed_correct("50%", "50"));
  CHECK(relaxed_correct("12.5", "12%"));     // 0.5 / 12 = 4.2%
  CHECK(relaxed_correct("1e2", "100"));
  CHECK(relaxed_correct("0", "0"));
  CHECK_FALSE(relaxed_correct("0.0", "0"));  // a zero target needs the same string
  CHECK_FALSE(relaxed_correct("1,000", "1000"));  // not a number to Python's float(): string comparison
  CHECK(relaxed_correct("Yes", "yes"));
  CHECK_FALSE(relaxed_correct("canada.", "Canada"));
  CHECK(chartqa_postprocess("42 million") == "42");
  CHECK(chartqa_postprocess("Canada") == "Canada");

  TempDir d;
  for (const char* f : {"a.png", "b.png"}) write_png(d, std::string("test/png/") + f);
  auto row = [](const std::string& img, const std::string& label) {
    return json{{"imgname", img}, {"query", "What is the value?"}, {"label", label}};
  };
  const std::string human = d.file("test/test_human.json",
                                   json::array({row("a.png", "100"), row("a.png", "100"), row("b.png", "40"),
                                                row("b.png", "Yes"), row("a.png", "12%"), row("a.png", "0")})
                                       .dump());
  const std::string aug = d.file("test/test_augmented.json",
                                 json::array({row("a.png", "-10"), row("b.png", "Canada"), row("c.png", "1")}).dump());
  const ReadResult r = read_chartqa({human, aug}, skip());
  REQUIRE(r.items.size() == 8);
  CHECK(error_rows(r) == std::set<std::string>{"augmented/2"});
  CHECK(build_prompt(Bench::ChartQA, r.items[0]).text ==
        "<image>What is the value?\nAnswer the question using a single word or phrase.");
  // human: 105 ok, 105.1 no, "42 million" -> 42 ok, yes ok, 12.5 vs 12% ok, 0.0 vs 0 no -> 4/6
  // augmented: -10.5 ok, "canada." no -> 1/2; overall 5/8
  const std::map<std::string, std::string> resp = {
      {"human/0", "105"}, {"human/1", "105.1"},   {"human/2", "42 million"}, {"human/3", "yes"},
      {"human/4", "12.5"}, {"human/5", "0.0"},    {"augmented/0", "-10.5"},  {"augmented/1", "canada."}};
  const BenchReport rep = score_benchmark(Bench::ChartQA, "chartqa", r.items, resp);
  CHECK(rep.metrics.at("relaxed_accuracy/human") == Approx(400.0 / 6));
  CHECK(rep.metrics.at("relaxed_accuracy/augmented") == Approx(50.0));
  CHECK(rep.metrics.at("relaxed_accuracy") == Approx(62.5));
  CHECK(item(rep, "human/2").prediction == "42");
}

TEST_CASE("bench: HallusionBench: yes/no accuracy, figure and question-pair accuracy, text-only rows") {
  TempDir d;
  write_png(d, "hallusion_bench/VD/illusion/0_0.png");
  write_png(d, "hallusion_bench/VD/illusion/0_1.png");
  write_png(d, "hallusion_bench/VS/chart/0_1.png");
  auto row = [](const std::string& cat, const std::string& sub, const std::string& fig, const std::string& q,
                const std::string& gt, const json& file, const std::string& question = "Is it so?") {
    return json{{"category", cat},  {"subcategory", sub},     {"visual_input", file.is_null() ? "0" : "1"},
                {"set_id", "0"},     {"figure_id", fig},      {"question_id", q},
                {"question", question}, {"gt_answer", gt},    {"filename", file}};
  };
  const json rows = json::array(
      {row("VD", "illusion", "0", "0", "1", "./hallusion_bench/VD/illusion/0_0.png"),
       row("VD", "illusion", "0", "1", "0", "./hallusion_bench/VD/illusion/0_0.png"),
       row("VD", "illusion", "1", "0", "0", "./hallusion_bench/VD/illusion/0_1.PNG"),  // case differs on disk
       row("VD", "illusion", "1", "1", "1", "./hallusion_bench/VD/illusion/0_1.png"),
       row("VS", "chart", "0", "0", "1", nullptr, "Is it so? Please answer yes or no."),
       row("VS", "chart", "1", "0", "0", "./hallusion_bench/VS/chart/0_1.png"),
       row("VS", "chart", "2", "0", "2", "./hallusion_bench/VS/chart/0_1.png")});
  const ReadResult r = read_hallusionbench(d.file("HallusionBench.json", rows.dump()), skip());
  REQUIRE(r.items.size() == 6);
  CHECK(error_rows(r) == std::set<std::string>{"VS_chart_0_2_0"});
  CHECK(build_prompt(Bench::HallusionBench, r.items[0]).text == "<image>Is it so?\nPlease answer yes or no.");
  CHECK(r.items[4].images.empty());
  CHECK(build_prompt(Bench::HallusionBench, r.items[4]).text == "Is it so? Please answer yes or no.");

  // answers: VD f0q0 yes ok, f0q1 no ok, f1q0 yes WRONG, f1q1 yes ok, VS f0q0 yes ok, VS f1q0 no ok
  // question accuracy 5/6; figures VD_0_0 ok, VD_0_1 not, VS_0_1 ok (VS figure 0 = no figure) -> 2/3;
  // question pairs VD q0 not, VD q1 ok, VS q0 ok -> 2/3
  const std::map<std::string, std::string> resp = {
      {"VD_illusion_0_0_0", "Yes"}, {"VD_illusion_0_0_1", "No"}, {"VD_illusion_0_1_0", "Yes"},
      {"VD_illusion_0_1_1", "yes"}, {"VS_chart_0_0_0", "Yes, it is."}, {"VS_chart_0_1_0", "No"}};
  const BenchReport rep = score_benchmark(Bench::HallusionBench, "hallusionbench", r.items, resp);
  CHECK(rep.metrics.at("question_accuracy") == Approx(500.0 / 6));
  CHECK(rep.metrics.at("figure_accuracy") == Approx(200.0 / 3));
  CHECK(rep.metrics.at("pair_accuracy") == Approx(200.0 / 3));
  CHECK(rep.headline == "question_accuracy");
}

TEST_CASE("bench: MathVista judge input carries every published field and the judge hook reads scores back") {
  TempDir d;
  write_png(d, "images/1.png");
  const json probs = {
      {"1", {{"pid", "1"}, {"question", "How many?"}, {"image", "images/1.png"}, {"choices", nullptr},
             {"answer", "5"}, {"question_type", "free_form"}, {"answer_type", "integer"}, {"precision", nullptr},
             {"query", "Hint: Please answer the question requiring an integer answer.\nQuestion: How many?"},
             {"metadata", {{"task", "figure question answering"}}}}},
      {"2", {{"pid", "2"}, {"question", "?"}, {"image", "images/2.png"}, {"query", "Q"}}}};
  const ReadResult r = read_mathvista(d.file("testmini.json", probs.dump()), skip());
  REQUIRE(r.items.size() == 1);
  CHECK(error_rows(r) == std::set<std::string>{"2"});
  const BenchPrompt p = build_prompt(Bench::MathVista, r.items[0]);
  CHECK(p.text == "<image>Hint: Please answer the question requiring an integer answer.\nQuestion: How many?");
  CHECK(p.max_new_tokens == 512);

  const std::map<std::string, std::string> resp = {{"1", "There are 5."}};
  const std::string in = d.str("judge/mathvista_results.json");
  write_judge_input(Bench::MathVista, in, r.items, resp);
  const json j = json::parse(read_file(in));
  CHECK(j["1"]["response"] == "There are 5.");
  CHECK(j["1"]["answer"] == "5");
  CHECK(j["1"]["question_type"] == "free_form");
  CHECK(j["1"]["metadata"]["task"] == "figure question answering");

  BenchReport rep = score_benchmark(Bench::MathVista, "mathvista", r.items, resp);
  CHECK(rep.headline.empty());
  // A stand-in judge: checks its input exists and writes MathVista's calculate_score shape.
  const JudgeCommand judge{"test -s {input} && printf '{\"average\": {\"accuracy\": 51.7, \"total\": 1}}' > {output}"};
  const auto scores = judge.run(Bench::MathVista, in, d.str("judge/scores.json"), r.items);
  CHECK(scores.at("average/accuracy") == Approx(51.7));
  merge_judge_scores(rep, scores);
  CHECK(rep.headline == "judge/average/accuracy");
  CHECK(rep.metrics.at("judge/average/accuracy") == Approx(51.7));

  const JudgeCommand failing{"exit 3; {input} {output}"};
  CHECK_THROWS_WITH(failing.run(Bench::MathVista, in, d.str("judge/x.json")), Catch::Contains("exit 3"));
  const JudgeCommand silent{"true {input} {output}"};
  CHECK_THROWS_WITH(silent.run(Bench::MathVista, in, d.str("judge/y.json")), Catch::Contains("wrote no"));
  CHECK_THROWS_WITH(JudgeCommand{"judge.py"}.run(Bench::MathVista, in, d.str("judge/z.json")),
                    Catch::Contains("{input}"));
}

TEST_CASE("bench: MM-Vet judge input (id -> answer) and grade file scores per capability") {
  TempDir d;
  write_png(d, "mm-vet/images/v1_0.png");
  write_png(d, "mm-vet/images/v1_1.png");
  const json mmvet = {{"v1_0", {{"imagename", "v1_0.png"}, {"capability", {"rec", "ocr"}},
                                {"question", "What is written?"}, {"answer", "Hello"}}},
                      {"v1_1", {{"imagename", "v1_1.png"}, {"capability", {"rec"}}, {"question", "What animal?"},
                                {"answer", "cat"}}},
                      {"v1_2", {{"imagename", "v1_2.png"}, {"capability", {"rec"}}, {"question", "x"}}}};
  const ReadResult r = read_mmvet(d.file("mm-vet/mm-vet.json", mmvet.dump()), skip());
  REQUIRE(r.items.size() == 2);
  CHECK(error_rows(r) == std::set<std::string>{"v1_2"});
  CHECK(r.items[0].category == "rec,ocr");
  const BenchPrompt p = build_prompt(Bench::MMVet, r.items[0]);
  CHECK(p.text == "<image>What is written?");
  CHECK(p.max_new_tokens == 1024);

  write_judge_input(Bench::MMVet, d.str("mmvet_results.json"), r.items, {{"v1_0", "Hello"}, {"v1_1", "A dog"}});
  CHECK(json::parse(read_file(d.str("mmvet_results.json"))) == json{{"v1_0", "Hello"}, {"v1_1", "A dog"}});

  // per item: v1_0 mean(1.0, 0.5) = 0.75, v1_1 0 -> total 37.5; rec (both) 37.5; ocr (v1_0) 75
  const std::string grades = d.file("grade.json", R"({"v1_0": {"model": ["g", "g"], "score": [1.0, 0.5]},
                                                    "v1_1": {"model": ["g", "g"], "score": [0.0, 0.0]}})");
  const auto s = read_judge_scores(Bench::MMVet, grades, r.items);
  CHECK(s.at("total") == Approx(37.5));
  CHECK(s.at("cap/rec") == Approx(37.5));
  CHECK(s.at("cap/ocr") == Approx(75.0));
}

TEST_CASE("bench: LLaVA-W answers JSONL in question order and review tuples give relative scores") {
  TempDir d;
  write_png(d, "llava-bench/images/001.jpg");
  std::ofstream(d.path / "llava-bench/images/bad.jpg") << "not an image";
  const std::string q = d.file(
      "llava-bench/questions.jsonl",
      json{{"question_id", 10}, {"image", "001.jpg"}, {"text", "Describe."}, {"category", "detail"}}.dump() + "\n" +
          json{{"question_id", 2}, {"image", "001.jpg"}, {"text", "What?"}, {"category", "conv"}}.dump() + "\n" +
          json{{"question_id", 3}, {"image", "bad.jpg"}, {"text", "Bad"}, {"category", "conv"}}.dump() + "\n");
  ReadOptions opt = skip();
  opt.decode_images = true;  // finds the corrupt image while reading
  const ReadResult r = read_llavaw(q, opt);
  REQUIRE(r.items.size() == 2);
  CHECK(error_rows(r) == std::set<std::string>{"3"});
  CHECK(r.errors[0].message.find("bad image") != std::string::npos);
  CHECK(build_prompt(Bench::LLaVAW, r.items[0]).max_new_tokens == 1024);

  write_judge_input(Bench::LLaVAW, d.str("answers.jsonl"), r.items, {{"10", "A long description."}, {"2", "A cat."}});
  const std::string a = read_file(d.str("answers.jsonl"));
  const auto nl = a.find('\n');
  const json first = json::parse(a.substr(0, nl)), second = json::parse(a.substr(nl + 1));
  CHECK(first["question_id"] == 2);  // numeric order, numbers as in questions.jsonl
  CHECK(first["text"] == "A cat.");
  CHECK(first["prompt"] == "What?");
  CHECK(second["question_id"] == 10);
  CHECK(first.contains("answer_id"));
  CHECK(first.contains("model_id"));

  // conv 6/8 = 75, detail 9/10 = 90, all 15/18 = 83.33
  const std::string reviews = d.file("reviews.jsonl", R"({"question_id": 2, "tuple": [8, 6], "category": "conv"}
{"question_id": 10, "tuple": [10, 9], "category": "detail"}
)");
  const auto s = read_judge_scores(Bench::LLaVAW, reviews);
  CHECK(s.at("conv") == Approx(75.0));
  CHECK(s.at("detail") == Approx(90.0));
  CHECK(s.at("all") == Approx(1500.0 / 18));
  BenchReport rep = score_benchmark(Bench::LLaVAW, "llavaw", r.items, {});
  CHECK(rep.missing == 2);
  merge_judge_scores(rep, s);
  CHECK(rep.headline == "judge/all");
}

TEST_CASE("bench: names, token budgets, and unreadable files") {
  CHECK(bench_from_name("mm-vet") == Bench::MMVet);
  CHECK(bench_name(Bench::ScienceQA) == "sqa");
  CHECK_THROWS_WITH(bench_from_name("vqa"), Catch::Contains("unknown benchmark"));
  CHECK(max_new_tokens(Bench::POPE) == 5);
  CHECK(max_new_tokens(Bench::MMBench) == 5);
  CHECK(bench_is_judged(Bench::LLaVAW));
  CHECK_FALSE(bench_is_judged(Bench::ChartQA));
  TempDir d;
  CHECK_THROWS_WITH(read_mmbench(d.str("nope.tsv")), Catch::Contains("nope.tsv"));
  CHECK_THROWS_WITH(read_seed(d.file("bad.json", "{oops")), Catch::Contains("bad.json") && Catch::Contains("JSON"));
  CHECK_THROWS_WITH(read_mmbench(d.file("unclosed.tsv", "index\tquestion\timage\n1\t\"open\tx\n")),
                    Catch::Contains("never closed"));
}

TEST_CASE("bench: open answers are scored by the option they name, the longest match first") {
  const std::vector<std::string> opts = {"shirt", "T-shirt", "bag", "sandal"};
  CHECK(option_named("a t-shirt, I think", opts) == 1);  // not "shirt": the longer option contains it
  CHECK(option_named("It is a Bag.", opts) == 2);
  CHECK(option_named("a shirt", opts) == 0);
  CHECK_FALSE(option_named("a coat", opts));
  CHECK_FALSE(option_named("", opts));
}
