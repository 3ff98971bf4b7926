// Tokenizers equal the Python references id for id on a real corpus (Debian's license texts, copyright files,
// multilingual text, special tokens anywhere), decode(encode(x)) == x, and bad files give clear errors.
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/chat_template.h"
#include "data/tokenizers/tokenizer.h"
#include "trainers/eval/answer_stream.h"
#include "tests/helpers.h"

using phantom::test::TempDir;

namespace {

struct Fixture {
  TempDir dir;
  std::vector<std::string> texts;
  nlohmann::json expected;
  Fixture() {
    const std::string cmd = std::string(PHANTOM_PYTHON) + " " + phantom::test::source_path("tests/tools/tokenizer_reference.py") +
                            " " + dir.str() + " > " + dir.str("ref.log") + " 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    texts = nlohmann::json::parse(std::ifstream(dir.str("texts.json"))).get<std::vector<std::string>>();
    expected = nlohmann::json::parse(std::ifstream(dir.str("expected.json")));
  }
};

// `decoded`: the key of the reference decodes (empty: decode must give the input back).
void check_parity(const phantom::data::Tokenizer& tok, const Fixture& f, const char* which, const char* decoded) {
  size_t mismatches = 0, tokens = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < f.texts.size(); ++i) {
    const auto ids = tok.encode(f.texts[i]);
    tokens += ids.size();
    const auto want = f.expected[which][i].get<std::vector<int32_t>>();
    if (ids != want) {
      if (++mismatches <= 3) {
        INFO(which << " text " << i << ": '" << f.texts[i].substr(0, 120) << "'");
        CHECK(ids == want);
      }
    }
    if (*decoded) {
      const auto want_text = f.expected[decoded][i].get<std::string>();
      if (tok.decode(ids) != want_text && ++mismatches <= 3) {
        INFO(which << " decode of text " << i);
        CHECK(tok.decode(ids) == want_text);
      }
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN(which << ": " << f.texts.size() << " texts, " << tokens << " tokens, " << static_cast<int>(f.texts.size() / s)
             << " texts/s (encode + decode)");
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("tokenizers: byte-level BPE (Qwen2 layout) and SentencePiece equal the Python references") {
  Fixture f;
  REQUIRE(f.texts.size() > 1000);
  auto bpe = phantom::data::load_tokenizer(f.dir.str("bpe"));
  // NFC changes a few inputs ("e\u0301" -> "\u00e9"), so exact round trips hold for already-NFC text only.
  check_parity(*bpe, f, "bpe", "");
  for (auto& t : f.texts)
    if (t.find("e\xcc\x81") == std::string::npos) {
      INFO(t.substr(0, 80));
      CHECK(bpe->decode(bpe->encode(t)) == t);
    }
  CHECK(bpe->token_to_id("<IMG_CONTEXT>").has_value());
  CHECK(bpe->encode("<img><IMG_CONTEXT><IMG_CONTEXT></img>").size() == 4);
  CHECK(bpe->decode(bpe->encode("<|im_start|>hi<|im_end|>"), /*skip_special=*/true) == "hi");

  auto spm = phantom::data::load_tokenizer(f.dir.str("spm/tokenizer.model"));
  check_parity(*spm, f, "spm", "spm_decoded");
}

namespace {

// The golden ids of tokenizers/tools/tokenizer_families.py: one directory per family, AutoTokenizer as reference.
struct Families {
  TempDir dir;
  std::vector<std::string> texts;
  nlohmann::json expected, prompts;
  Families() {
    const std::string cmd = std::string(PHANTOM_PYTHON) + " " + phantom::test::source_path("tests/tools/tokenizer_families.py") +
                            " " + dir.str() + " > " + dir.str("ref.log") + " 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::ifstream log(dir.str("ref.log"));
      FAIL("tokenizer_families.py failed: " << std::string(std::istreambuf_iterator<char>(log), {}));
    }
    texts = nlohmann::json::parse(std::ifstream(dir.str("texts.json"))).get<std::vector<std::string>>();
    expected = nlohmann::json::parse(std::ifstream(dir.str("expected.json")));
    prompts = nlohmann::json::parse(std::ifstream(dir.str("prompts.json")));
  }
  static Families& get() {
    static Families f;
    return f;
  }
};

void check_family(const std::string& family, const std::string& path_in_dir, const char* kind) {
  auto& f = Families::get();
  auto tok = phantom::data::load_tokenizer(f.dir.str(path_in_dir));
  INFO(family << ": " << tok->describe());
  CHECK(tok->describe().find(kind) != std::string::npos);
  const auto& ids = f.expected[family]["ids"];
  const auto& decoded = f.expected[family]["decoded"];
  size_t bad_ids = 0, bad_text = 0, bad_skip = 0;
  for (size_t i = 0; i < f.texts.size(); ++i) {
    const auto got = tok->encode(f.texts[i]);
    const auto want = ids[i].get<std::vector<int32_t>>();
    if (got != want && ++bad_ids <= 3) {
      INFO("text " << i << ": '" << f.texts[i].substr(0, 160) << "'");
      CHECK(got == want);
    }
    const auto text = tok->decode(want);
    if (text != decoded[i].get<std::string>() && ++bad_text <= 3) {
      INFO("decode of text " << i << ": '" << f.texts[i].substr(0, 160) << "'");
      CHECK(text == decoded[i].get<std::string>());
    }
  }
  // decode(skip_special_tokens=True): a skipped token between words keeps their space ("that work", not "thatwork")
  const auto& skip_cases = f.expected[family]["skip_cases"];
  CHECK(skip_cases.size() >= 40);
  for (const auto& c : skip_cases) {
    const auto answer = tok->decode(c["ids"].get<std::vector<int32_t>>(), /*skip_special=*/true);
    if (answer != c["text"].get<std::string>() && ++bad_skip <= 3) {
      INFO("decode without special tokens of " << c["ids"].dump());
      CHECK(answer == c["text"].get<std::string>());
    }
  }
  CHECK(bad_ids == 0);
  CHECK(bad_text == 0);
  CHECK(bad_skip == 0);
  // Evaluation prompts through the chat template, images included: the official code tokenises the whole string.
  const auto tmpl = phantom::data::ChatTemplate::by_name(family == "phi3" || family == "llama" ? "phi3" : "chatml");
  const phantom::data::SampleEncoder enc(*tok, tmpl, phantom::data::ImageTokens::from_tokenizer(*tok, 4));
  for (auto& p : f.prompts) {
    INFO("prompt '" << p["text"][family].get<std::string>().substr(0, 200) << "'");
    CHECK(enc.prompt(p["question"].get<std::string>(), p["tiles"].get<std::vector<int64_t>>()) ==
          p["ids"][family].get<std::vector<int32_t>>());
  }
}

}  // namespace

TEST_CASE("tokenizers: every family's tokenizer gives AutoTokenizer's ids, decodes and prompt ids") {
  REQUIRE(Families::get().texts.size() > 1000);
  SECTION("Qwen2: byte-level BPE tokenizer.json") { check_family("qwen2", "qwen2", "byte-level BPE"); }
  SECTION("Phi-3: Llama-style tokenizer.json (Prepend/Replace normaliser, byte fallback, rstrip chat tokens)") {
    check_family("phi3", "phi3", "tokenizer.json: BPE with byte fallback");
  }
  SECTION("Llama, legacy=False: Metaspace prepend_scheme first; lstrip, single_word, normalized added tokens") {
    check_family("llama", "llama", "Metaspace(first)");
  }
  SECTION("InternLM2: tokenizer.model through the slow InternLM2Tokenizer (chosen over a tokenizer.json)") {
    auto& f = Families::get();
    // A converted tokenizer.json next to it does not change the choice: the official class reads tokenizer.model.
    std::filesystem::copy_file(f.dir.str("internlm2_fast/tokenizer.json"), f.dir.str("internlm2/tokenizer.json"),
                               std::filesystem::copy_options::overwrite_existing);
    check_family("internlm2", "internlm2", "tokenizer.model: SentencePiece");
  }
  SECTION("InternLM2 exported by LlamaTokenizerFast: tokenizer.json alone") {
    check_family("internlm2_fast", "internlm2_fast", "tokenizer.json: BPE with byte fallback");
  }
}

// `phantom generate` prints the answer as its tokens arrive: the printed text must end as the decode of all of them
// (what --input writes), also when a token ends inside a multi-byte character.
TEST_CASE("tokenizers: a streamed answer prints exactly the final decode, CJK and emoji cut between tokens") {
  auto& f = Families::get();
  const std::string answer = "東京です。数据并行训练需要同步梯度。🙂👩‍💻 Größe 12,50 € — done.";
  for (const char* family : {"qwen2", "phi3", "internlm2"}) {
    INFO(family);
    auto tok = phantom::data::load_tokenizer(f.dir.str(family));
    auto ids = tok->encode(answer);
    ids.push_back(*tok->token_to_id(std::string(family) == "phi3" ? "<|end|>" : "<|im_end|>"));  // the eos
    int cut = 0;  // prefixes whose decode ends inside a character: the case a stream must hold back
    for (size_t k = 1; k <= ids.size(); ++k) {
      const auto t = tok->decode(std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<long>(k)), true);
      cut += t.size() >= 3 && t.compare(t.size() - 3, 3, "\xEF\xBF\xBD") == 0;
    }
    CHECK(cut > 0);
    std::string out;
    int pieces = 0;
    phantom::eval::AnswerStream stream(*tok, [&](const std::string& p) { out += p, ++pieces; });
    for (auto id : ids) stream.add(id);
    stream.add(tok->vocab_size() + 5);  // a padded embedding row: no text
    stream.finish();
    CHECK(out == tok->decode(ids, true));
    CHECK(out.find("\xEF\xBF\xBD") == std::string::npos);
    CHECK(pieces >= 20);  // printed as it came, not held back to the end
  }
}

TEST_CASE("tokenizers: added-token strip rules and byte fallback, golden values") {
  auto& f = Families::get();
  auto phi = phantom::data::load_tokenizer(f.dir.str("phi3"));
  const int32_t user = *phi->token_to_id("<|user|>"), end = *phi->token_to_id("<|end|>"),
                assistant = *phi->token_to_id("<|assistant|>");
  // rstrip: the whitespace after <|user|> and <|assistant|> is swallowed, never encoded as ▁ or <0x0A>.
  CHECK(phi->encode("<|user|>\n") == std::vector<int32_t>{user});
  CHECK(phi->encode("<|end|><|assistant|>\n \n") == std::vector<int32_t>{end, assistant});
  CHECK(phi->encode("<|user|>\nhi") == phi->encode("<|user|>hi"));
  // Byte fallback: a character outside the vocabulary becomes its UTF-8 bytes as <0xNN> tokens.
  const auto ids = phi->encode("\xe4\xb8\x80");  // U+4E00, not in the tiny vocabulary
  std::vector<std::string> pieces;
  for (auto id : ids) pieces.push_back(phi->id_to_token(id));
  CHECK(pieces == std::vector<std::string>{"\xe2\x96\x81", "<0xE4>", "<0xB8>", "<0x80>"});
  CHECK(phi->decode(ids) == "\xe4\xb8\x80");
  CHECK(phi->decode(phi->encode("<|user|>\nHello world<|end|>"), /*skip_special=*/true) == "Hello world");
}

TEST_CASE("tokenizers: bad files give clear errors") {
  TempDir t;
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.str("nope.json")), Catch::Contains("tokenizer not found"));
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.file("tokenizer.json", "{not json")), Catch::Contains("invalid JSON"));
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.file("a/tokenizer.json", R"({"model": {"type": "Unigram"}})")),
                    Catch::Contains("model.type 'Unigram' is not supported"));
  const std::string vocab = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [])";
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.file("c/tokenizer.json", "{" + vocab + R"(}, "normalizer": {"type": "Lowercase"}})")),
                    Catch::Contains("c/tokenizer.json: normalizer 'Lowercase' is not supported"));
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.file("d/tokenizer.json", "{" + vocab + R"(}, "pre_tokenizer": {"type": "Whitespace"}})")),
                    Catch::Contains("d/tokenizer.json: pre-tokenizer 'Whitespace' is not supported"));
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.file("e/tokenizer.json", "{" + vocab + R"(}, "decoder": {"type": "WordPiece"}})")),
                    Catch::Contains("e/tokenizer.json: decoder 'WordPiece' is not supported"));
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.file("f/tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})")),
                    Catch::Contains("f/tokenizer.json: merge 'a b' uses a token missing from the vocabulary"));
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.file("g/tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}})")),
                    Catch::Contains("g/tokenizer.json: unk_token '<unk>' is not in the vocabulary"));
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.file("b/tokenizer.model", "garbage")),
                    Catch::Contains("cannot load SentencePiece model"));
  std::filesystem::create_directories(t.str("empty"));
  CHECK_THROWS_WITH(phantom::data::load_tokenizer(t.str("empty")), Catch::Contains("no tokenizer.json or tokenizer.model"));
}

namespace {

// One family's in-context encodings against answer_tokens_reference.py: ids and label masks of every sample
// (each answer row of a preference sample), and whether a question's answers share their prompt ids.
void check_answer_tokens(const std::string& family, const nlohmann::json& samples, const nlohmann::json& expected) {
  auto& f = Families::get();
  auto tok = phantom::data::load_tokenizer(f.dir.str(family));
  const auto tmpl = phantom::data::ChatTemplate::by_name(family == "phi3" || family == "llama" ? "phi3" : "chatml");
  phantom::data::SampleEncoder enc(*tok, tmpl, phantom::data::ImageTokens::from_tokenizer(*tok, 4));
  // The reference lays images out by the first_turn rule (every image first); what is compared here is the answers'
  // tokens and masks (interleaved images: tests/test_multi_image.cpp).
  enc.set_multi_image("first_turn");
  REQUIRE(enc.answer_tokenization() == "in_context");  // the default
  const auto& want = expected[family]["samples"];
  const auto& stats = expected[family]["stats"];
  size_t bad = 0, rows = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& j = samples[i];
    phantom::data::Sample s;
    s.where = "sample " + std::to_string(i);
    const auto tiles = j["tiles"].get<std::vector<int64_t>>();
    std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> got;  // (ids, labels) per row
    bool shared = true;
    if (j["kind"] == "conversation") {
      const auto turns = j["turns"].get<std::vector<std::string>>();
      for (size_t t = 0; t < turns.size(); ++t) s.turns.push_back({t % 2 == 0, turns[t]});
      auto c = enc.conversation(s, tiles);
      got.emplace_back(c.ids, c.labels);
    } else {
      s.question = j["question"].get<std::string>();
      s.chosen = j["chosen"].get<std::string>();
      s.rejected = j["rejected"].get<std::vector<std::string>>();
      auto p = enc.preference(s, tiles);
      shared = p.shared();
      for (size_t a = 0; a < p.answers.size(); ++a) {
        std::vector<int32_t> ids = p.prompt_of(a), labels(p.prompt_of(a).size(), phantom::data::kIgnore);
        ids.insert(ids.end(), p.answers[a].begin(), p.answers[a].end());
        labels.insert(labels.end(), p.answers[a].begin(), p.answers[a].end());
        got.emplace_back(ids, labels);
      }
      if (shared != want[i]["shared"].get<bool>() && ++bad <= 3) CHECK(shared == want[i]["shared"].get<bool>());
    }
    const auto& ref_rows = j["kind"] == "conversation" ? nlohmann::json::array({want[i]}) : want[i]["rows"];
    REQUIRE(ref_rows.size() == got.size());
    for (size_t r = 0; r < got.size(); ++r, ++rows) {
      const auto ids = ref_rows[r]["ids"].get<std::vector<int32_t>>();
      const auto labels = ref_rows[r]["labels"].get<std::vector<int32_t>>();
      if ((got[r].first != ids || got[r].second != labels) && ++bad <= 3) {
        INFO(family << " sample " << i << " row " << r << ": " << j.dump().substr(0, 300));
        CHECK(got[r].first == ids);
        CHECK(got[r].second == labels);
      }
    }
  }
  const auto& n = enc.counts();
  WARN(family << ": " << samples.size() << " samples, " << rows << " rows, " << bad << " differing; " << n.answers
              << " answers, " << n.straddling << " straddling, " << n.unshared_prompts << " of "
              << n.preference_questions << " questions with unshared prompts; reference: " << stats.dump());
  CHECK(bad == 0);
  CHECK(n.answers == stats["answers"].get<int64_t>());
  CHECK(n.straddling == stats["straddling"].get<int64_t>());
  CHECK(n.unshared_prompts == stats["unshared_prompts"].get<int64_t>());
  // The boundary cases are exercised where the vocabulary can join the prompt's "\n" with an answer's start.
  if (family == "qwen2" || family == "internlm2_newlines") {
    CHECK(n.straddling > 0);
    CHECK(n.unshared_prompts > 0);
  }
}

}  // namespace

TEST_CASE("tokenizers: in-context answer tokens and label masks equal the official concatenation (HF tokenizers)") {
  auto& f = Families::get();
  const std::string cmd = std::string(PHANTOM_PYTHON) + " " +
                          phantom::test::source_path("tests/tools/answer_tokens_reference.py") + " " + f.dir.str() +
                          " > " + f.dir.str("answers.log") + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream log(f.dir.str("answers.log"));
    FAIL("answer_tokens_reference.py failed: " << std::string(std::istreambuf_iterator<char>(log), {}));
  }
  const auto samples = nlohmann::json::parse(std::ifstream(f.dir.str("answers/samples.json")));
  const auto expected = nlohmann::json::parse(std::ifstream(f.dir.str("answers/expected.json")));
  REQUIRE(samples.size() >= 1000);
  SECTION("Qwen2: byte-level tokenizer.json") { check_answer_tokens("qwen2", samples, expected); }
  SECTION("InternLM2: tokenizer.model (SentencePiece)") { check_answer_tokens("internlm2", samples, expected); }
  SECTION("Phi-3: SentencePiece-style tokenizer.json") { check_answer_tokens("phi3", samples, expected); }
  SECTION("Llama legacy=False: Metaspace first") { check_answer_tokens("llama", samples, expected); }
  SECTION("InternLM2 as LlamaTokenizerFast: tokenizer.json") { check_answer_tokens("internlm2_fast", samples, expected); }
  SECTION("InternLM2 tokenizer.model with newline pieces (straddling tokens)") {
    check_answer_tokens("internlm2_newlines", samples, expected);
  }
}
