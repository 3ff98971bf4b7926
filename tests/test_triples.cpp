// The triple builder's pieces without a model or a server: answer normalisation and verification (option letters,
// numbers, text), the options of a question, the endpoint reply clean-up and judge verdicts, the request cache
// key (SHA-256, checked against a published test vector), and the format guess behind `data check`'s hints.
#include <fstream>

#include "data/format_guess.h"
#include "tests/helpers.h"
#include "trainers/triples/builder.h"
#include "trainers/triples/endpoint.h"
#include "trainers/triples/prompts.h"
#include "trainers/triples/verify.h"

using namespace phantom::triples;
using phantom::test::TempDir;

TEST_CASE("triples: normalised answers ignore case, punctuation, articles and spacing") {
  CHECK(normalize_answer("The  Sneaker.") == "sneaker");
  CHECK(normalize_answer("a T-shirt!") == "t shirt");
  CHECK(normalize_answer("  ") == "");
  CHECK(normalize_answer("An apple, the pear") == "apple pear");
}

TEST_CASE("triples: the options a question lists") {
  const std::string q = "What is it?\nA. cat\nB. dog\nC. bird\nAnswer with the option's letter.";
  CHECK(question_options(q) == std::vector<std::string>{"cat", "dog", "bird"});
  CHECK(question_options("(A) red\n(B) blue") == std::vector<std::string>{"red", "blue"});
  CHECK(question_options("A. only one option").empty());
  CHECK(question_options("What colour is it?").empty());
}

TEST_CASE("triples: verification by option, number and text") {
  const std::string mc = "What is it?\nA. cat\nB. dog\nC. bird\nD. fish";
  CHECK(verify_answer("B", "B", mc).correct);
  CHECK(verify_answer("(B) dog", "B", mc).correct);
  CHECK(verify_answer("The answer is B.", "B", mc).correct);
  CHECK(verify_answer("dog", "B", mc).correct);  // the option's text names it
  CHECK_FALSE(verify_answer("C", "B", mc).correct);
  CHECK_FALSE(verify_answer("I am not sure", "B", mc).correct);  // names no option: wrong
  CHECK(verify_answer("C", "B", mc).rule == "option");
  CHECK(verify_answer("There are 1,200 people.", "1200", "How many?").correct);
  CHECK(verify_answer("12.0", "12", "How many?").correct);
  CHECK_FALSE(verify_answer("13", "12", "How many?").correct);
  CHECK_FALSE(verify_answer("many", "12", "How many?").correct);
  CHECK(verify_answer("13", "12", "How many?").rule == "number");
  CHECK(verify_answer("It is a sneaker.", "sneaker", "What is it?").correct);  // contains it: leans correct
  CHECK(verify_answer("the Sneaker", "A sneaker.", "What is it?").correct);
  CHECK_FALSE(verify_answer("It is a sandal.", "It is a sneaker.", "What is it?").correct);
  CHECK_FALSE(verify_answer("", "sneaker", "What is it?").correct);
  // Worded differently, the same content: function words are not compared (a sampled answer was trained as
  // "rejected" for saying "The image shows a sandal." where the reference says "This is a sandal.").
  CHECK(verify_answer("The image shows a sandal.", "This is a sandal.", "What is it?").correct);
  CHECK(verify_answer("It is a bag.", "The image shows a bag.", "What is it?").correct);
  CHECK(verify_answer("sandal", "This is a sandal.", "What is it?").correct);
  CHECK_FALSE(verify_answer("The photo shows a trouser.", "It is a dress.", "What is it?").correct);
  CHECK_FALSE(verify_answer("It is not a sandal.", "It is a sandal.", "What is it?").correct);  // "not" counts
  // Without the file's statistics two framings disagree; with them they do not.
  CHECK_FALSE(verify_answer("The photo shows a sandal.", "The image shows a sandal.", "What is it?").correct);
}

TEST_CASE("triples: framing words come from the file's text answers") {
  const std::vector<std::string> items = {"T-shirt", "trouser", "pullover", "dress", "coat",
                                          "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
  const std::vector<std::string> forms = {"It is a {}.", "This is a {}.", "The image shows a {}.", "A {}.",
                                          "The photo shows a {}."};
  std::vector<std::pair<std::string, std::string>> pairs;
  for (size_t i = 0; i < 200; ++i) {
    std::string f = forms[i % forms.size()];
    f.replace(f.find("{}"), 2, items[(i / forms.size()) % items.size()]);
    pairs.emplace_back("What is it?", f);
  }
  pairs.emplace_back("What is it?\nA. cat\nB. dog", "B");  // an option and a number are not text answers
  pairs.emplace_back("How many?", "12");
  const auto f = framing_words(pairs);
  CHECK(f.text_references == 200);
  // "is" in 2 of 5 forms, "shows" 2, "it", "this", "image", "photo" 1 each (20 %); "shirt" in T-shirt and shirt (20 %);
  // every other item 10 %: below the 15 % share.
  CHECK(f.words == std::set<std::string>{"image", "is", "it", "photo", "shirt", "shows", "this"});
  CHECK(verify_answer("The photo shows a sandal.", "The image shows a sandal.", "What is it?", &f).correct);
  CHECK(verify_answer("The photo shows a shirt.", "It is a shirt.", "What is it?", &f).correct);  // shirt: framing
  CHECK_FALSE(verify_answer("It is a coat.", "It is a shirt.", "What is it?", &f).correct);       // coat is not
  CHECK(verify_answer("A shirt.", "It is a T-shirt.", "What is it?", &f).correct);  // says less: leans correct
  CHECK_FALSE(verify_answer("The photo shows a trouser.", "It is a dress.", "What is it?", &f).correct);
  // Fewer than 20 text answers give no statistics.
  const std::vector<std::pair<std::string, std::string>> few(pairs.begin(), pairs.begin() + 19);
  CHECK(framing_words(few).words.empty());
}

TEST_CASE("triples: endpoint replies cleaned, judge verdicts read") {
  CHECK(clean_reply("  \"A red bag.\"\n") == "A red bag.");
  CHECK(clean_reply("Wrong answer: C") == "C");
  CHECK(clean_reply("   ") == "");
  CHECK(judge_says_correct("Yes."));
  CHECK(judge_says_correct("yes, it does"));
  CHECK_FALSE(judge_says_correct("No"));
  CHECK_FALSE(judge_says_correct("yesterday"));  // a word starting with yes is not a yes
  const auto r = rejected_answer_request("<image>What is it?", "A shoe.", 2, 0.7, 64);
  REQUIRE(r.messages.size() == 2);
  CHECK(r.messages[1].second.find("[image]What is it?") != std::string::npos);
  CHECK(r.messages[1].second.find("A shoe.") != std::string::npos);
  CHECK(r.seed == 2);
}

TEST_CASE("triples: the cache key is the SHA-256 of the request body") {
  // FIPS 180-2 test vector.
  CHECK(ChatEndpoint::key_of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EndpointOptions o;
  o.base_url = "http://127.0.0.1:9/v1";
  o.model = "m";
  ChatEndpoint e(o);
  ChatRequest a = rejected_answer_request("q", "c", 0, 1.0, 16), b = a;
  b.seed = 1;
  CHECK(e.body(a) != e.body(b));  // the k-th sample is another request
  CHECK(ChatEndpoint::key_of(e.body(a)) == ChatEndpoint::key_of(e.body(rejected_answer_request("q", "c", 0, 1.0, 16))));
}

TEST_CASE("triples: the question of a sample, or why there is none") {
  phantom::data::Sample conv;
  conv.turns = {{true, "<image>\nWhat is it?"}, {false, "A shoe."}};
  TripleQuestion q;
  CHECK(question_of(conv, q).empty());
  CHECK(q.question == "<image>\nWhat is it?");
  CHECK(q.chosen == "A shoe.");
  conv.turns.push_back({true, "And its colour?"});
  conv.turns.push_back({false, "Red."});
  CHECK(question_of(conv, q).find("multi-turn") != std::string::npos);
}

TEST_CASE("data: the format a file looks like, and the hint when it was read in another") {
  TempDir dir;
  const std::string conv = dir.str("conv.jsonl"), pref = dir.str("pref.json"), meta = dir.str("meta.json");
  std::ofstream(conv) << R"({"id": 1, "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})" << "\n";
  std::ofstream(pref) << R"([ {"question": "q", "chosen": "a", "rejected": ["b"]} ])";
  std::ofstream(meta) << R"({"set": {"root": "img", "annotation": "conv.jsonl"}})";
  phantom::data::DataConfig cfg;
  CHECK(phantom::data::guess_format(conv, cfg) == "conversations");
  CHECK(phantom::data::guess_format(pref, cfg) == "preference");
  CHECK(phantom::data::guess_format(meta, cfg) == "internvl_meta");
  cfg.format = "preference";
  const std::string hint = phantom::data::format_mismatch_hint(conv, cfg, "data.format");
  CHECK(hint.find("read as data.format=preference") != std::string::npos);
  CHECK(hint.find("data.format=conversations") != std::string::npos);
  CHECK(phantom::data::format_mismatch_hint(pref, cfg, "data.format").empty());
}
