// Data pipeline: masks by construction per template, every bad-input case under fail and skip, the loader's
// exact position restore and rank sharding, JSON-array line numbers.
#include <fstream>
#include <set>
#include <sstream>

#include "data/annotations.h"
#include "data/chat_template.h"
#include "data/collate.h"
#include "data/loader.h"
#include "data/tokenizers/tokenizer.h"
#include "tests/helpers.h"

using namespace phantom::data;
using phantom::test::TempDir;

namespace {

struct DemoTokenizer {
  TempDir dir;
  std::unique_ptr<Tokenizer> tok;
  DemoTokenizer() {
    const std::string cmd = std::string(PHANTOM_PYTHON) + " " + phantom::test::source_path("scripts/make_demo_data.py") +
                            " --out " + dir.str("d") + " --train 20 --val 4 --test 4 > " + dir.str("log") + " 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    tok = load_tokenizer(dir.str("d/tokenizer.json"));
  }
};

std::vector<int32_t> supervised(const EncodedConversation& c) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < c.ids.size(); ++i)
    if (c.labels[i] != kIgnore) out.push_back(c.ids[i]);
  return out;
}

DataConfig cfg_for(const std::string& format, const std::string& root, const std::string& on_error = "fail") {
  DataConfig c;
  c.format = format;
  c.image_root = root;
  c.on_error = on_error;
  return c;
}

}  // namespace

TEST_CASE("data: for each template the supervised tokens decode to exactly the answers + end tokens") {
  DemoTokenizer d;
  for (const char* name : {"chatml", "phi3"}) {
    INFO(name);
    auto tmpl = ChatTemplate::by_name(name);
    SampleEncoder enc(*d.tok, tmpl, ImageTokens::from_tokenizer(*d.tok, 4));
    Sample s;
    s.turns = {{true, "<image>\nWhat is it?"}, {false, "A shirt."}, {true, "And the colour?"}, {false, " Grey, mostly\n"}};
    auto c = enc.conversation(s, {2});
    CHECK(d.tok->decode(supervised(c)) == "A shirt." + tmpl.assistant_end + " Grey, mostly\n" + tmpl.assistant_end);
    // The prompt holds <img> + 2 tiles x 4 <IMG_CONTEXT> + </img>.
    const auto ctx = *d.tok->token_to_id("<IMG_CONTEXT>");
    CHECK(std::count(c.ids.begin(), c.ids.end(), ctx) == 8);
    CHECK(d.tok->decode(c.ids).rfind(tmpl.user_start + "<img>", 0) == 0);
    // Preference: prompt ends with the assistant start; answers end with the end token.
    Sample p;
    p.question = "Which?";
    p.chosen = "B";
    p.rejected = {"C", "It is a coat."};
    auto e = enc.preference(p, {1});
    CHECK(e.answers.size() == 3);
    CHECK(d.tok->decode(e.answers[2]) == "It is a coat." + tmpl.assistant_end);
    const std::string prompt = d.tok->decode(e.prompt);
    CHECK(prompt.size() > tmpl.assistant_start.size());
    CHECK(prompt.compare(prompt.size() - tmpl.assistant_start.size(), std::string::npos, tmpl.assistant_start) == 0);
    CHECK(d.tok->decode(supervised(chosen_as_conversation(e))) == "B" + tmpl.assistant_end);
  }
}

TEST_CASE("data: every bad input is an error naming file:line under fail, and dropped + counted under skip") {
  TempDir t;
  t.file("img/a.png", "not really a png");  // exists: its decoding is checked later, by the loader
  const std::string rows =
      R"({"question": "q1", "chosen": "a", "rejected": "b", "image": "a.png"})" "\n"
      R"({"question": "q2", "chosen": "a", "rejected": "b", "image": "missing.png"})" "\n"
      R"({"question": "q3", "chosen": "a", "rejected": "b")" "\n"
      R"({"question": "q4", "chosen": "  ", "rejected": "b"})" "\n"
      R"({"question": "q5", "chosen": "a"})" "\n"
      R"({"question": "<image><image> q6", "chosen": "a", "rejected": ["b", "c"], "image": "a.png"})" "\n"
      R"({"question": "q7", "chosen": "a", "rejected": []})" "\n";
  auto f = t.file("prefs.jsonl", rows);
  struct Case {
    int line;
    const char* reason;
  };
  for (auto c : {Case{2, "missing image"}, Case{3, "malformed JSON"}, Case{4, "empty answer"}, Case{5, "missing field"},
                 Case{6, "image count mismatch"}, Case{7, "empty answer"}}) {
    INFO(c.reason);
    // Keep the first row and the bad one only: the error must name that line.
    std::istringstream in(rows);
    std::string line, only;
    for (int n = 1; std::getline(in, line); ++n) only += (n == 1 || n == c.line) ? line + "\n" : "\n";
    auto g = t.file("case.jsonl", only);
    SkipCounts sk;
    CHECK_THROWS_WITH(read_annotations(g, cfg_for("preference", t.str("img")), sk),
                      Catch::Contains(g + ":" + std::to_string(c.line)) && Catch::Contains(c.reason));
  }
  SkipCounts sk;
  auto kept = read_annotations(f, cfg_for("preference", t.str("img"), "skip"), sk);
  CHECK(kept.size() == 1);
  CHECK(sk.total() == 6);
  CHECK(sk.by_reason["empty answer"] == 2);
  CHECK(sk.summary().find("6 skipped") == 0);

  // Conversations: unknown role, assistant first, trailing user turn; JSON arrays report the element's line.
  auto conv = t.file("conv.json", "[\n  {\"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}, {\"from\": \"gpt\", \"value\": \"yo\"}]},\n"
                                  "  {\"conversations\": [{\"from\": \"robot\", \"value\": \"hi\"}]},\n"
                                  "  {\"conversations\": [{\"from\": \"gpt\", \"value\": \"hi\"}]},\n"
                                  "  {\"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}]}\n]\n");
  SkipCounts sc;
  CHECK_THROWS_WITH(read_annotations(conv, cfg_for("conversations", ""), sc), Catch::Contains(conv + ":3") && Catch::Contains("unknown role"));
  auto ok = read_annotations(conv, cfg_for("conversations", "", "skip"), sc);
  CHECK(ok.size() == 1);
  CHECK(sc.by_reason["unknown role"] == 1);
  CHECK(sc.by_reason["turn order"] == 1);
  CHECK(sc.by_reason["empty answer"] == 1);
  // A file that is not JSON at all is never skippable.
  CHECK_THROWS_WITH(read_annotations(t.file("bad.json", "[ {\"a\": 1}, "), cfg_for("conversations", "", "skip"), sc),
                    Catch::Contains("malformed JSON"));
  // Field mapping: a user's own names.
  auto mine = t.file("mine.jsonl", R"({"q": "x?", "good": "y", "bad": ["z"]})" "\n");
  auto mc = cfg_for("preference", "");
  mc.fields.question = "q", mc.fields.chosen = "good", mc.fields.rejected = "bad";
  SkipCounts s2;
  auto m = read_annotations(mine, mc, s2);
  REQUIRE(m.size() == 1);
  CHECK(m[0].chosen == "y");
}

TEST_CASE("data: the loader restores its position exactly, 1 and 2 ranks read the same global sequence") {
  std::vector<int64_t> lengths(103);
  for (size_t i = 0; i < lengths.size(); ++i) lengths[i] = static_cast<int64_t>((i * 37) % 50);
  LoaderOptions o;
  o.global_batch = 4;
  o.seed = 9;
  auto prep = [](const std::vector<size_t>& idx) { return idx; };
  Loader<std::vector<size_t>> a(lengths, o, prep);
  std::vector<std::vector<size_t>> seq;
  for (int i = 0; i < 40; ++i) seq.push_back(a.next());  // crosses the epoch boundary (25 batches per epoch)
  // Stop after 17 batches, restore into a fresh loader: the next batches are identical.
  Loader<std::vector<size_t>> b(lengths, o, prep);
  for (int i = 0; i < 17; ++i) b.next();
  auto pos = b.position();
  Loader<std::vector<size_t>> c(lengths, o, prep);
  c.restore(pos);
  for (int i = 17; i < 40; ++i) CHECK(c.next() == seq[static_cast<size_t>(i)]);
  // Each epoch is a permutation of all samples but the dropped tail.
  std::set<size_t> epoch0;
  for (int i = 0; i < 25; ++i) epoch0.insert(seq[static_cast<size_t>(i)].begin(), seq[static_cast<size_t>(i)].end());
  CHECK(epoch0.size() == 100);
  // Two ranks: their halves, concatenated per global batch, are the 1-rank batches.
  LoaderOptions r0 = o, r1 = o;
  r0.world = r1.world = 2, r1.rank = 1;
  Loader<std::vector<size_t>> l0(lengths, r0, prep), l1(lengths, r1, prep);
  for (int i = 0; i < 30; ++i) {
    auto x = l0.next(), y = l1.next();
    x.insert(x.end(), y.begin(), y.end());
    CHECK(x == seq[static_cast<size_t>(i)]);
  }
}
