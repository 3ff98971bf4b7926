// Preference data in the layouts people have: InternVL MPO / MMPR meta files whose datasets are triples
// ({"image", "question", "chosen", "rejected"} rows), and multi-turn conversations whose last assistant turn has
// rejected alternatives (PO on that turn, the earlier turns a prompt only). Each is read into the expected encoded
// samples (prompt = the whole context, answers = the last turn's chosen and rejected), bad rows name file:line and
// key, and one training step runs on each.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/annotations.h"
#include "data/chat_template.h"
#include "data/collate.h"
#include "data/format_guess.h"
#include "data/tokenizers/tokenizer.h"
#include "phantom/util/config.h"
#include "tests/helpers.h"
#include "tests/tiny.h"

using namespace phantom;
using nlohmann::json;

namespace {

std::vector<json> rows_of(const std::string& jsonl) {
  std::ifstream in(jsonl);
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(json::parse(line));
  return rows;
}

void write_rows(const std::string& path, const std::vector<json>& rows) {
  std::ofstream out(path);
  for (auto& r : rows) out << r.dump() << "\n";
}

// A demo triple as a two-round conversation: the question, the chosen answer, a follow-up question whose chosen
// answer ends the conversation and whose rejected answer is the triple's.
json multi_turn(const json& t) {
  return {{"id", t["id"]}, {"image", t["image"]},
          {"conversations", {{{"from", "human"}, {"value", "<image>\n" + t["question"].get<std::string>()}},
                             {{"from", "gpt"}, {"value", t["chosen"]}},
                             {{"from", "human"}, {"value", "Are you sure? Answer again."}},
                             {{"from", "gpt"}, {"value", t["chosen"]}}}},
          {"rejected", t["rejected"]}};
}

std::string error_of(const std::string& path, const data::DataConfig& cfg) {
  data::SkipCounts skipped;
  try {
    data::read_annotations(path, cfg, skipped);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("preference formats: a multi-turn conversation with rejected alternatives to its last answer") {
  test::DemoDataDir demo(4);
  const std::string d = demo.dir.str("data");
  auto triples = rows_of(d + "/train.jsonl");
  std::vector<json> rows;
  for (auto& t : triples) rows.push_back(multi_turn(t));
  // The same preference with the last user turn open and the chosen answer in its own field (TRL's layout).
  json open = multi_turn(triples[0]);
  open["conversations"].erase(3);
  open["chosen"] = triples[0]["chosen"];
  rows.push_back(open);
  write_rows(d + "/multi.jsonl", rows);

  data::DataConfig cfg;
  cfg.format = "preference";
  cfg.image_root = d;
  CHECK(data::guess_format(d + "/multi.jsonl", cfg) == "preference");
  data::SkipCounts skipped;
  const auto samples = data::read_annotations(d + "/multi.jsonl", cfg, skipped);
  REQUIRE(samples.size() == 5);
  auto tok = data::load_tokenizer(d + "/tokenizer.json");
  for (const char* mode : {"in_context", "per_segment"}) {
    INFO(mode);
    data::SampleEncoder enc(*tok, data::ChatTemplate::by_name("chatml"), data::ImageTokens::from_tokenizer(*tok, 16));
    enc.set_answer_tokenization(mode);
    for (size_t i = 0; i < samples.size(); ++i) {
      const auto& s = samples[i];
      INFO(s.where);
      REQUIRE(s.is_preference());
      REQUIRE(s.context.size() == 2);
      CHECK(s.question == "Are you sure? Answer again.");
      const json& t = triples[i % 4];
      CHECK(s.chosen == t["chosen"].get<std::string>());
      CHECK(s.rejected == std::vector<std::string>{t["rejected"].get<std::string>()});
      const auto p = enc.preference(s, {1});
      // The prompt is the whole context: the same conversation without its last answer, read as SFT data, has
      // exactly these ids before its last answer's supervised tokens.
      data::Sample conv;
      conv.turns = s.context;
      conv.turns.push_back({true, s.question});
      conv.turns.push_back({false, s.chosen});
      const auto c = enc.conversation(conv, {1});
      size_t last = c.ids.size();
      while (last > 0 && c.labels[last - 1] != data::kIgnore) --last;
      CHECK(p.prompt_of(0) == std::vector<int32_t>(c.ids.begin(), c.ids.begin() + static_cast<long>(last)));
      CHECK(p.answers[0] == std::vector<int32_t>(c.ids.begin() + static_cast<long>(last), c.ids.end()));
      CHECK(tok->decode(p.answers[1]) == s.rejected[0] + "<|im_end|>");
      // PO on the last turn only: the earlier answer is context, never supervised (also as SFT on the chosen one).
      const auto sft = data::chosen_as_conversation(p);
      int64_t supervised = 0;
      for (auto l : sft.labels) supervised += l != data::kIgnore;
      CHECK(supervised == static_cast<int64_t>(p.answers[0].size()));
      const std::string prompt_text = tok->decode(p.prompt_of(0));
      CHECK(prompt_text.find(s.context[1].text + "<|im_end|><|im_start|>user\nAre you sure?") != std::string::npos);
    }
  }

  // Bad rows: each names its file:line and the key.
  const std::string bad = d + "/bad.jsonl";
  auto expect = [&](json row, const std::string& message) {
    INFO(message);
    write_rows(bad, {multi_turn(triples[0]), row});
    CHECK_THAT(error_of(bad, cfg), Catch::Contains(bad + ":2: " + message));
  };
  json r = multi_turn(triples[0]);
  r.erase("rejected");
  expect(r, "missing field ('rejected')");
  r = multi_turn(triples[0]);
  r["question"] = "What is it?";
  expect(r, "ambiguous row (both 'question' and 'conversations'");
  r = multi_turn(triples[0]);
  r["chosen"] = "A shirt.";
  expect(r, "ambiguous row ('chosen' and a last assistant turn in 'conversations'");
  r = open;
  r.erase("chosen");
  expect(r, "missing field ('chosen')");
  r = multi_turn(triples[0]);
  r["conversations"][1]["value"] = " ";
  expect(r, "empty answer ('conversations': an assistant turn is empty)");
  r = multi_turn(triples[0]);
  r["conversations"][2]["from"] = "gpt";
  expect(r, "turn order ('conversations': turns must alternate");
  r = multi_turn(triples[0]);
  r["rejected"] = r["conversations"][3]["value"];
  expect(r, "rejected equals chosen");
  r = multi_turn(triples[0]);
  r["conversations"][2]["value"] = "And <image>?";
  expect(r, "image count mismatch (2 <image> placeholders but 1 images)");
}

TEST_CASE("preference formats: an MMPR-style meta file lists preference datasets beside conversation ones") {
  test::DemoDataDir demo(4);
  const std::string d = demo.dir.str("data");
  auto triples = rows_of(d + "/train.jsonl");
  // MMPR's layout: the rows are the demo triples as they are ({"image", "question", "chosen", "rejected"}).
  std::filesystem::copy_file(d + "/train.jsonl", d + "/mmpr.jsonl");
  std::vector<json> convs;
  for (auto& t : triples)
    convs.push_back({{"image", t["image"]},
                     {"conversations", {{{"from", "human"}, {"value", "<image>\n" + t["question"].get<std::string>()}},
                                        {{"from", "gpt"}, {"value", t["chosen"]}}}}});
  write_rows(d + "/sft.jsonl", convs);
  demo.dir.file("data/meta.json", R"({
    "mmpr_demo": {"root": ".", "annotation": "mmpr.jsonl", "data_augment": false, "repeat_time": 2, "length": 4},
    "sft_demo": {"root": ".", "annotation": "sft.jsonl", "repeat_time": 0.5, "length": 4},
    "declared": {"root": ".", "annotation": "sft.jsonl", "format": "conversations", "repeat_time": 1}
  })");
  data::DataConfig cfg;
  cfg.format = "internvl_meta";
  data::SkipCounts skipped;
  const auto samples = data::read_annotations(d + "/meta.json", cfg, skipped, 7);
  // Datasets in the meta file's (sorted) key order: declared (4), mmpr_demo (2 x 4), sft_demo (half of 4).
  REQUIRE(samples.size() == 4 + 8 + 2);
  for (size_t i = 0; i < samples.size(); ++i) {
    INFO(samples[i].where);
    const bool mmpr = i >= 4 && i < 12;
    CHECK(samples[i].is_preference() == mmpr);
    CHECK(samples[i].where.find(mmpr ? "mmpr.jsonl:" : "sft.jsonl:") != std::string::npos);
  }
  const auto& s = samples[4];
  CHECK(s.question == triples[0]["question"].get<std::string>());
  CHECK(s.chosen == triples[0]["chosen"].get<std::string>());
  CHECK(s.rejected == std::vector<std::string>{triples[0]["rejected"].get<std::string>()});
  CHECK(s.images == std::vector<std::string>{(std::filesystem::path(d) / "." / triples[0]["image"].get<std::string>()).string()});

  // A dataset declared in a format it is not, an unknown format, and a bad row: file:line and key.
  demo.dir.file("data/bad_format.json", R"({"x": {"annotation": "sft.jsonl", "format": "triples"}})");
  CHECK_THAT(error_of(d + "/bad_format.json", cfg),
             Catch::Contains("bad_format.json: dataset 'x': 'format' must be conversations or preference, got 'triples'"));
  demo.dir.file("data/declared_wrong.json", R"({"x": {"root": ".", "annotation": "sft.jsonl", "format": "preference"}})");
  CHECK_THAT(error_of(d + "/declared_wrong.json", cfg), Catch::Contains(d + "/sft.jsonl:1: missing field ('rejected')"));
  auto broken = triples;
  broken[2].erase("chosen");
  write_rows(d + "/mmpr_bad.jsonl", broken);
  demo.dir.file("data/bad_row.json", R"({"x": {"root": ".", "annotation": "mmpr_bad.jsonl"}})");
  CHECK_THAT(error_of(d + "/bad_row.json", cfg), Catch::Contains(d + "/mmpr_bad.jsonl:3: missing field ('chosen')"));
}

TEST_CASE("recipe: PO on an MMPR meta file and on multi-turn preference rows, one step each, and a meta file of conversations is refused") {
  test::DemoDataDir demo(8);
  const std::string d = demo.dir.str("data");
  auto triples = rows_of(d + "/train.jsonl");
  std::vector<json> multi, convs;
  for (auto& t : triples) multi.push_back(multi_turn(t));
  write_rows(d + "/multi.jsonl", multi);
  for (auto& t : multi) t.erase("rejected"), convs.push_back(t);
  write_rows(d + "/sft.jsonl", convs);
  demo.dir.file("data/mmpr_meta.json", R"({"mmpr": {"root": ".", "annotation": "train.jsonl", "repeat_time": 1}})");
  demo.dir.file("data/sft_meta.json", R"({"sft": {"root": ".", "annotation": "sft.jsonl", "repeat_time": 1}})");
  const std::string yaml = demo.dir.file("po.yaml", "base: " + test::source_path("configs/demo.yaml") +
                                                        "\nstages:\n"
                                                        "  - name: meta\n    loss: po\n    trainable: [\".*\"]\n"
                                                        "    data: " + d + "/mmpr_meta.json\n    format: internvl_meta\n    max_steps: 1\n"
                                                        "  - name: multi\n    loss: po\n    trainable: [\".*\"]\n"
                                                        "    data: " + d + "/multi.jsonl\n    format: preference\n    max_steps: 1\n");
  std::vector<std::string> o = {"run.name=po", "run.output_dir=" + demo.dir.str("runs"), "run.threads=2",
                                "data.train=" + d + "/train.jsonl", "data.val=", "data.image_root=" + d,
                                "data.tokenizer=" + d + "/tokenizer.json", "data.batch_size=2", "model.llm.num_layers=1",
                                "model.vision.num_layers=1", "validation.benchmark=", "log.tensorboard=false"};
  auto result = test::run(recipe::load_run_config(yaml, o));
  REQUIRE(result.losses.size() == 2);
  for (auto& l : result.losses) CHECK(std::isfinite(l));
  // A PO stage on a meta file whose dataset holds conversations names the row.
  auto bad = o;
  bad.push_back("stages.0.data=" + d + "/sft_meta.json");
  bad.push_back("run.name=po-bad");
  CHECK_THROWS_WITH(test::run(recipe::load_run_config(yaml, bad)),
                    Catch::Contains("stage meta (stages.0.format = internvl_meta): loss po needs preference rows but " + d +
                                    "/sft.jsonl:1 is a conversation without rejected answers"));
}
