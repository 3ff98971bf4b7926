// The indexed annotation reader (data/sample_set.h): the rows, ids, errors and file:line of an indexed file equal
// what the whole-file reader gives, for JSONL and JSON arrays, with escaped quotes and brackets inside strings,
// CRLF line ends, a missing final newline, blank lines, a malformed row and an empty file; rows checked up front
// keep their exact length estimate; InternVL meta repeats select the same rows.
#include <nlohmann/json.hpp>

#include "data/annotations.h"
#include "data/sample_set.h"
#include "tests/helpers.h"

using namespace phantom::data;
using Catch::Contains;
using phantom::test::TempDir;

namespace {

constexpr uint64_t kWhenRead = 0, kUpFront = UINT64_MAX;  // rows checked when read / when indexed

DataConfig cfg_of(const std::string& on_error, const std::string& format = "preference") {
  DataConfig c;
  c.format = format;
  c.on_error = on_error;
  return c;
}

// The ids of the rows of an indexed set that parse, and the where + reason of those that do not.
std::vector<std::string> ids_of(const SampleSet& s, std::vector<std::string>* errors = nullptr) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < s.size(); ++i) {
    try {
      ids.push_back(s.at(i).id);
    } catch (const DataError& e) {
      if (errors) errors->push_back(e.where + " " + e.reason);
    }
  }
  return ids;
}

// Rows whose strings hold what a naive splitter would trip on: escaped quotes, brackets and braces, commas, a
// backslash just before the closing quote; the third row is malformed JSON.
const char* kRows[] = {
    R"({"id": "a", "question": "say \"[x]\" {y}, ok", "chosen": "c", "rejected": "r"})",
    R"({"id": "b", "question": "ends in a backslash \\", "chosen": "c]", "rejected": ["r1", "r2}"]})",
    R"({"id": "c", "question": nope, "chosen": "c", "rejected": "r"})",
    R"({"id": "d", "question": "]}[{,\"", "chosen": "\\\"", "rejected": "r"})",
};

}  // namespace

TEST_CASE("sample set: an indexed JSONL file (CRLF, blank lines, no final newline) reads as the whole-file reader") {
  TempDir t;
  const std::string text = std::string(kRows[0]) + "\r\n\r\n  \r\n" + kRows[1] + "\r\n" + kRows[2] + "\r\n" + kRows[3];
  const std::string f = t.file("rows.jsonl", text);
  SkipCounts sk;
  const auto whole = read_annotations(f, cfg_of("skip"), sk);
  REQUIRE(whole.size() == 3);
  CHECK(sk.by_reason["malformed JSON"] == 1);
  CHECK_THAT(sk.examples.at(0), Contains(f + ":5: malformed JSON"));
  SkipCounts none;
  const auto set = SampleSet::index(f, cfg_of("fail"), none, 0, kWhenRead);
  CHECK(set.size() == 4);  // unchecked: the malformed row is found when it is read
  CHECK(none.total() == 0);
  std::vector<std::string> errors;
  CHECK(ids_of(set, &errors) == std::vector<std::string>{"a", "b", "d"});
  CHECK(errors == std::vector<std::string>{f + ":5 malformed JSON"});
  for (size_t i = 0, k = 0; i < set.size(); ++i) {
    if (i == 2) continue;
    const Sample s = set.at(i), &w = whole[k++];
    CHECK(s.question == w.question);
    CHECK(s.chosen == w.chosen);
    CHECK(s.rejected == w.rejected);
    CHECK(s.where == w.where);
  }
  CHECK(set.at(0).question == "say \"[x]\" {y}, ok");
  CHECK(set.at(1).rejected == std::vector<std::string>{"r1", "r2}"});
  CHECK(set.at(3).where == f + ":6");
  // Checked up front: the bad row fails under fail, is counted and left out under skip.
  SkipCounts sk2;
  CHECK_THROWS_WITH(SampleSet::index(f, cfg_of("fail"), sk2, 0, kUpFront), Contains(f + ":5") && Contains("malformed JSON"));
  const auto checked = SampleSet::index(f, cfg_of("skip"), sk2, 0, kUpFront);
  CHECK(ids_of(checked) == std::vector<std::string>{"a", "b", "d"});
  CHECK(sk2.by_reason["malformed JSON"] == 1);
  // Rows checked up front estimate lengths exactly as the in-memory samples do (the epoch order is unchanged).
  const SampleSet memory(whole, true);
  for (size_t i = 0; i < 3; ++i) CHECK(checked.estimated_length(i, 16) == memory.estimated_length(i, 16));
}

TEST_CASE("sample set: an indexed JSON array names each element by line and array index, as a JSON parser splits it") {
  TempDir t;
  std::string text = "[\r\n";
  for (int i = 0; i < 4; ++i) text += std::string("  ") + kRows[i] + (i < 3 ? ",\r\n" : "\r\n");
  text += "]";  // no final newline
  const std::string f = t.file("rows.json", text);
  SkipCounts sk;
  const auto set = SampleSet::index(f, cfg_of("fail"), sk, 0, kWhenRead);
  REQUIRE(set.size() == 4);
  std::vector<std::string> errors;
  CHECK(ids_of(set, &errors) == std::vector<std::string>{"a", "b", "d"});
  CHECK(errors == std::vector<std::string>{f + ":4 (array index 2) malformed JSON"});
  CHECK(set.at(3).where == f + ":5 (array index 3)");
  // The same elements as nlohmann's parse of the whole array (the malformed one replaced by a valid row).
  std::string valid = text;
  valid.replace(valid.find("nope"), 4, "\"q\"");
  const auto all = nlohmann::json::parse(valid);
  const auto fixed = SampleSet::index(t.file("valid.json", valid), cfg_of("fail"), sk, 0, kUpFront);
  REQUIRE(fixed.size() == all.size());
  for (size_t i = 0; i < fixed.size(); ++i) {
    const Sample s = fixed.at(i);
    CHECK(s.id == all[i]["id"].get<std::string>());
    CHECK(s.question == all[i]["question"].get<std::string>());
    CHECK(s.chosen == all[i]["chosen"].get<std::string>());
  }
  // One line, as json.dump writes it: every element on line 1, told apart by its index.
  const std::string one = t.file("one.json", "[" + std::string(kRows[0]) + ", " + kRows[3] + "]");
  const auto line1 = SampleSet::index(one, cfg_of("fail"), sk, 0, kWhenRead);
  CHECK(line1.at(1).where == one + ":1 (array index 1)");
  CHECK(line1.at(1).question == "]}[{,\"");
  // The whole-file reader reports the same place under fail.
  CHECK_THROWS_WITH(read_annotations(f, cfg_of("fail"), sk), Contains(f + ":4 (array index 2): malformed JSON"));
}

TEST_CASE("sample set: empty files, a broken array and a file that is not there") {
  TempDir t;
  SkipCounts sk;
  for (const char* text : {"", "\n\n  \r\n", "[]", " [ \n ] \n"}) {
    INFO("text: '" << text << "'");
    const auto set = SampleSet::index(t.file("e.json", text), cfg_of("fail"), sk, 0, kWhenRead);
    CHECK(set.empty());
    CHECK(read_annotations(t.str("e.json"), cfg_of("fail"), sk).empty());
  }
  // A broken array is a file-level error, never skippable.
  CHECK_THROWS_WITH(SampleSet::index(t.file("b.json", "[\n{\"id\": \"a\"},\n"), cfg_of("skip"), sk, 0, kWhenRead),
                    Contains("b.json:3: unterminated JSON array"));
  CHECK_THROWS_WITH(SampleSet::index(t.file("s.json", "[{\"id\": \"a \\\"]}"), cfg_of("skip"), sk, 0, kWhenRead),
                    Contains("unterminated"));
  CHECK_THROWS_WITH(SampleSet::index(t.str("absent.jsonl"), cfg_of("skip"), sk, 0, kWhenRead), Contains("absent.jsonl: not found"));
}

TEST_CASE("sample set: a missing image is found when the row is read, and InternVL meta repeats select the same rows") {
  TempDir t;
  t.file("img/a.png", "x");
  const std::string f = t.file("p.jsonl",
                               "{\"id\": \"1\", \"image\": \"a.png\", \"question\": \"<image> q\", \"chosen\": \"c\", \"rejected\": \"r\"}\n"
                               "{\"id\": \"2\", \"image\": \"gone.png\", \"question\": \"<image> q\", \"chosen\": \"c\", \"rejected\": \"r\"}\n");
  auto cfg = cfg_of("fail");
  cfg.image_root = t.str("img");
  SkipCounts sk;
  const auto set = SampleSet::index(f, cfg, sk, 0, kWhenRead);
  CHECK(set.at(0).images == std::vector<std::string>{t.str("img/a.png")});
  CHECK_THROWS_WITH(set.at(1), Contains(f + ":2: missing image"));
  CHECK(set.estimated_length(1, 100) >= 100);  // one "<image>" placeholder counted before parsing
  // Meta with a fractional repeat: the indexed set and the whole-file reader read the same rows in the same order.
  std::string conv;
  for (int i = 0; i < 10; ++i)
    conv += "{\"id\": \"c" + std::to_string(i) + "\", \"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}, "
            "{\"from\": \"gpt\", \"value\": \"yo\"}]}\n";
  t.file("c.jsonl", conv);
  const std::string meta = t.file("m.json", "{\"set\": {\"annotation\": \"c.jsonl\", \"repeat_time\": 2.5}}");
  auto mc = cfg_of("fail", "internvl_meta");
  const auto whole = read_annotations(meta, mc, sk, 7);
  const auto indexed = SampleSet::index(meta, mc, sk, 7, kWhenRead);
  REQUIRE(whole.size() == 25);
  REQUIRE(indexed.size() == whole.size());
  for (size_t i = 0; i < whole.size(); ++i) CHECK(indexed.at(i).id == whole[i].id);
  CHECK_FALSE(indexed.preference());
}
