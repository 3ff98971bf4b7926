// Reliability of the input paths (docs/reliability.md): strict numbers, YAML structure, files that are not
// regular files, JSON arrays, the decompression-bomb cap, model-config validation before modules are built, and
// checkpoint writes that fail cleanly when the disk fills up. The CLI side is tests/cli/bad_inputs.sh; the
// fuzz pass is tests/fuzz.
#include "tests/test_pch.h"
#include "phantom/model/config_checks.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/annotations.h"
#include "data/images/image.h"
#include "data/images/image_limits.h"
#include "data/tokenizers/hf_pipeline.h"
#include "data/tokenizers/tokenizer.h"
#include "phantom/io/checkpoint.h"
#include "phantom/io/hf_config.h"
#include "phantom/model/model.h"
#include "phantom/util/config.h"
#include "phantom/util/files.h"
#include "phantom/util/parse.h"
#include "tests/helpers.h"
#include "tests/tiny.h"
#include "trainers/eval/bench_files.h"
#include "trainers/eval/benchmarks.h"
#include "trainers/recipe/train_state.h"

using namespace phantom;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

TEST_CASE("reliability: strict integers and numbers", "[reliability]") {
  int64_t v = -7;
  for (auto [text, want] : std::vector<std::pair<std::string, int64_t>>{
           {"0", 0}, {"8", 8}, {"-12", -12}, {"+3", 3}, {"9223372036854775807", INT64_MAX}})
    CHECK((util::parse_int(text, v) && v == want));
  for (std::string bad : {"010", "0x10", "08", "-010", "12abc", "", "-", "1.5", "1e4", " 1", "1 ", "9223372036854775808",
                          "0b1", "٣"})
    CHECK_FALSE(util::parse_int(bad, v));
  // configs accept integral exponent forms, not fractions or octal-looking mantissas
  CHECK((util::parse_int("1e4", v, true) && v == 10000));
  CHECK((util::parse_int("2.5e3", v, true) && v == 2500));
  for (std::string bad : {"1.5", "2.5e0", "01e4", "0x1p4", "1e40"}) CHECK_FALSE(util::parse_int(bad, v, true));
  double d = 0;
  CHECK((util::parse_number("1e-5", d) && d == 1e-5));
  CHECK((util::parse_number(".5", d) && d == 0.5));
  for (std::string bad : {"inf", "nan", "0x1p3", "1e999", "abc", "1.0.0", ""}) CHECK_FALSE(util::parse_number(bad, d));
}

TEST_CASE("reliability: YAML duplicate keys, octal-looking integers and odd keys are errors with file:line",
          "[reliability]") {
  test::TempDir t;
  auto load = [&](const std::string& text) {
    const std::string p = t.file("c.yaml", text);
    recipe::RunConfig c;
    config::load(c, p, {});
    return c;
  };
  CHECK_THROWS_WITH(load("optim:\n  lr: 1.0e-4\n  lr: 2.0e-4\n"),
                    Contains("duplicate key 'lr'") && Contains("c.yaml:3; first at") && Contains("c.yaml:2"));
  CHECK_THROWS_WITH(load("data:\n  batch_size: 2\ndata:\n  batch_size: 4\n"), Contains("duplicate key 'data'"));
  CHECK_THROWS_WITH(load("run:\n  seed: 010\n"), Contains("run.seed: expected a decimal integer") && Contains("c.yaml:2"));
  CHECK_THROWS_WITH(load("run:\n  seed: 0x10\n"), Contains("got '0x10'"));
  CHECK_THROWS_WITH(load("? [a]\n: 1\n"), Contains("a key must be a plain name"));
  CHECK_THROWS_WITH(load("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n"), Contains("unknown key"));  // aliases still read
  CHECK(load("run:\n  seed: 10\n").run.seed == 10);
  CHECK(load("stages:\n  - {name: a, trainable: ['.*'], max_steps: 1e4}\n").stages[0].max_steps == 10000);
  // No stages is a valid base file for includes; `phantom train` refuses it before the run directory exists
  // (tests/cli/bad_inputs.sh, case "stages: []").
  CHECK(recipe::load_run_config(t.file("e.yaml", "stages: []\n"), {}).stages.empty());
}

TEST_CASE("reliability: FIFOs, directories and symlink loops are refused without blocking", "[reliability]") {
  test::TempDir t;
  const std::string fifo = t.str("pipe.png"), loop = t.str("loop.png");
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  fs::create_symlink("loop2.png", loop);
  fs::create_symlink("loop.png", t.str("loop2.png"));
  CHECK_THAT(util::file_problem(fifo), Contains("FIFO"));
  CHECK_THAT(util::file_problem(loop), Contains("symlink loop"));
  CHECK_THAT(util::file_problem(t.str()), Contains("directory"));
  CHECK(util::file_problem(t.str("nope")) == "not found");
  CHECK(util::file_problem(t.file("ok.txt", "x")).empty());
  // the image loader returns at once with the file named (opened O_NONBLOCK, refused by fstat)
  CHECK_THROWS_WITH(data::load_image(fifo), Contains(fifo + ": is a FIFO"));
  CHECK_THROWS_WITH(data::load_image(loop), Contains(loop + ": cannot open (symlink loop"));
  // annotations: such an image is a bad sample at its file:line, dropped under on_error: skip
  const std::string ann = t.file("a.jsonl",
                                 "{\"question\": \"<image> q\", \"chosen\": \"a\", \"rejected\": \"b\", \"image\": \"pipe.png\"}\n"
                                 "{\"question\": \"<image> q\", \"chosen\": \"a\", \"rejected\": \"b\", \"image\": \"loop.png\"}\n"
                                 "{\"question\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}\n");
  data::DataConfig cfg;
  cfg.image_root = t.str();
  data::SkipCounts skipped;
  CHECK_THROWS_WITH(data::read_annotations(ann, cfg, skipped), Contains("a.jsonl:1: unreadable image") && Contains("FIFO"));
  cfg.on_error = "skip";
  CHECK(data::read_annotations(ann, cfg, skipped).size() == 1);
  CHECK(skipped.by_reason["unreadable image"] == 2);
  CHECK_THAT(skipped.examples.at(1), Contains("a.jsonl:2") && Contains("symlink loop"));
  // an annotation file that is a FIFO
  CHECK_THROWS_WITH(data::read_annotations(fifo, cfg, skipped), Contains("is a FIFO"));
}

TEST_CASE("reliability: JSON arrays need exactly one comma between elements, and type errors name file:line",
          "[reliability]") {
  auto split = [](const std::string& text) { return data::split_json_array(text, "f.json"); };
  CHECK(split("[{\"a\": 1}, {\"b\": [1, 2]}, 3]").size() == 3);
  CHECK(split("[]").empty());
  CHECK_THROWS_WITH(split("[\n{\"a\": 1},\n]"), Contains("f.json:3: trailing comma"));
  CHECK_THROWS_WITH(split("[\n{\"a\": 1}\n{\"a\": 2}]"), Contains("f.json:3: missing comma"));
  CHECK_THROWS_WITH(split("[{\"a\": 1},, {}]"), Contains("two commas"));
  CHECK_THROWS_WITH(split("[, {}]"), Contains("comma before the first element"));
  CHECK_THROWS_WITH(split("[{}] x"), Contains("unexpected text after"));
  CHECK_THROWS_WITH(split("[{\"a\": \"\\"), Contains("unterminated"));
  test::TempDir t;
  data::DataConfig cfg;
  cfg.format = "conversations";
  data::SkipCounts skipped;
  const std::string f = t.file("c.jsonl", "{\"conversations\": [{\"from\": 1, \"value\": \"hi\"}, {\"from\": \"gpt\", \"value\": \"yo\"}]}\n");
  CHECK_THROWS_WITH(data::read_annotations(f, cfg, skipped), Contains("c.jsonl:1: malformed turn ('from' must be a string, got 1)"));
  cfg.format = "internvl_meta";
  const std::string m = t.file("m.json", "{\"set\": {\"root\": 5, \"annotation\": \"c.jsonl\"}}");
  CHECK_THROWS_WITH(data::read_annotations(m, cfg, skipped), Contains("m.json: dataset 'set': 'root' must be a path string, got 5"));
}

TEST_CASE("reliability: decompression bombs are refused from the header, the cap is configurable", "[reliability]") {
  // A PNG signature + IHDR declaring 20000 x 20000 and nothing else: refused before any decoding.
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
  for (uint32_t x : {20000u, 20000u}) png += std::string{char(x >> 24), char(x >> 16), char(x >> 8), char(x)};
  png += std::string("\x08\x02\0\0\0\0\0\0\0", 9);
  CHECK_THROWS_WITH(data::decode_image(reinterpret_cast<const uint8_t*>(png.data()), png.size(), "bomb.png"),
                    Contains("bomb.png: image too large: 20000x20000 = 400000000 pixels, over the limit of 89478485"));
  cv::Mat m(30, 40, CV_8UC3, cv::Scalar(1, 2, 3));
  for (const char* ext : {".png", ".jpg", ".bmp", ".webp"}) {
    INFO(ext);
    std::vector<uint8_t> buf;
    REQUIRE(cv::imencode(ext, m, buf));
    data::set_max_image_pixels(1199);
    CHECK_THROWS_WITH(data::decode_image(buf.data(), buf.size(), "x"), Contains("40x30 = 1200 pixels, over the limit of 1199"));
    data::set_max_image_pixels(1200);
    CHECK(data::decode_image(buf.data(), buf.size(), "x").width == 40);
  }
  data::set_max_image_pixels(data::kDefaultMaxImagePixels);
}

TEST_CASE("reliability: model configs are validated before any module is built", "[reliability]") {
  ModelConfig c = test::tiny_vlm_config();
  CHECK(model_config_problem(c).empty());
  auto problem = [&](auto edit) {
    ModelConfig x = test::tiny_vlm_config();
    edit(x);
    return model_config_problem(x);
  };
  CHECK_THAT(problem([](ModelConfig& x) { x.llm.num_heads = 0; }), Contains("llm.num_heads (0)"));
  CHECK_THAT(problem([](ModelConfig& x) { x.llm.num_kv_heads = 0; }), Contains("llm.num_kv_heads (0)"));
  CHECK_THAT(problem([](ModelConfig& x) { x.vision.patch_size = 0; }), Contains("vision.patch_size (0)"));
  CHECK_THAT(problem([](ModelConfig& x) { x.llm.num_layers = -2; }), Contains("llm.num_layers (-2)"));
  CHECK_THAT(problem([](ModelConfig& x) { x.llm.num_heads = 3; }), Contains("multiple of llm.num_heads (3)"));
  CHECK_THAT(problem([](ModelConfig& x) { x.downsample_ratio = 0.3; }), Contains("whole cells"));
  // the YAML path: run_config's validation
  test::TempDir y;
  CHECK_THROWS_WITH(recipe::load_run_config(y.file("m.yaml", "model:\n  llm:\n    num_layers: 5000\n"), {}),
                    Contains("config error: model.llm.num_layers (5000) must be in [1, 1024]"));
  // HF config.json: the key as the file spells it
  test::TempDir t;
  auto hf = [&](const std::string& llm) {
    t.file("m/config.json", "{\"llm_config\": {\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 32, "
                            "\"intermediate_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 64, " + llm + "}, "
                            "\"vision_config\": {\"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1, "
                            "\"num_attention_heads\": 2, \"patch_size\": 7, \"image_size\": 28}, \"ps_version\": \"v2\"}");
    ModelConfig mc;
    read_hf_config(t.str("m"), mc);
    return mc;
  };
  // (Qwen2Config's default num_key_value_heads is 32, as upstream: a valid file with 4 heads names its KV heads)
  CHECK(hf("\"num_attention_heads\": 4, \"num_key_value_heads\": 2").llm.num_heads == 4);
  CHECK_THROWS_WITH(hf("\"num_attention_heads\": 0"), Contains("config.json llm_config: key 'num_attention_heads' must be >= 1, got 0"));
  CHECK_THROWS_WITH(hf("\"num_attention_heads\": 4, \"num_key_value_heads\": 0"), Contains("'num_key_value_heads' must be >= 1"));
  CHECK_THROWS_WITH(hf("\"num_attention_heads\": 4, \"rms_norm_eps\": \"small\""),
                    Contains("key 'rms_norm_eps' must be a number, got \"small\""));
  CHECK_THROWS_WITH(hf("\"num_attention_heads\": 4.5"), Contains("'num_attention_heads' must be an integer"));
}

namespace {
// Files over `bytes` fail with EFBIG while alive, as they would with ENOSPC on a full disk.
struct FileSizeLimit {
  rlimit old{};
  void (*old_handler)(int);
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old);
    old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit r = old;
    r.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &r);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
  }
};
}  // namespace

TEST_CASE("reliability: a checkpoint that does not fit fails cleanly, the previous one stays intact", "[reliability]") {
  test::TempDir t;
  torch::manual_seed(0);
  torch::nn::Linear model(64, 64);  // 16.6 kB of tensors
  auto opt = torch::optim::AdamW(model->parameters());
  model(torch::randn({2, 64})).sum().backward();
  opt.step();
  recipe::TrainState st;
  st.global_step = 1;
  recipe::save_checkpoint(t.str(), *model, &opt, st, "x: 1\n", 5);
  const std::string first = t.str("checkpoints/step-000001");
  REQUIRE(recipe::latest_checkpoint(t.str()) == first);
  auto listing = [&] {
    std::vector<std::string> names;
    for (auto& e : fs::recursive_directory_iterator(t.str("checkpoints")))
      names.push_back(e.path().string() + " " + (e.is_regular_file() ? std::to_string(e.file_size()) : "dir"));
    std::sort(names.begin(), names.end());
    return names;
  };
  const auto before = listing();
  st.global_step = 2;
  for (rlim_t limit : {rlim_t(4000), rlim_t(20000), rlim_t(40000)}) {  // fails in model, optimizer, then later
    INFO(limit);
    std::string msg;
    {
      FileSizeLimit small(limit);
      try {
        recipe::save_checkpoint(t.str(), *model, &opt, st, "x: 1\n", 5);
      } catch (const std::runtime_error& e) {
        msg = e.what();
      }
    }
    if (msg.empty()) continue;  // large enough after all: then the checkpoint must be complete (checked below)
    CHECK_THAT(msg, Contains("cannot write checkpoint") && Contains("step-000002") && Contains("File too large") &&
                        Contains("the last complete checkpoint, " + first + ", is intact"));
    CHECK(listing() == before);  // no .tmp-step directory, no *.tmp.* file, step-000001 untouched
  }
  // and step 1 still resumes
  torch::nn::Linear again(64, 64);
  recipe::load_checkpoint_model(first, *again);
  CHECK(torch::equal(again->weight, model->weight));
  auto opt2 = torch::optim::AdamW(again->parameters());
  recipe::load_checkpoint_optimizer(first, opt2);
}

// Retention and "latest" go by the step number, not the name's text (step-1000000 sorts before step-999999), and
// never count or delete another run's checkpoints.
TEST_CASE("reliability: retention keeps the newest checkpoints of the run by step, another run's are kept", "[reliability]") {
  test::TempDir t;
  torch::nn::Linear model(4, 4);
  recipe::TrainState st;
  st.run_id = "other";
  st.global_step = 5;
  recipe::save_checkpoint(t.str(), *model, nullptr, st, "x: 1\n", 1);  // a copied-in checkpoint of another run
  st.run_id = "this";
  for (int64_t step : {999998, 999999, 1000000, 1000001}) {
    st.global_step = step;
    recipe::save_checkpoint(t.str(), *model, nullptr, st, "x: 1\n", 2);
  }
  std::vector<std::string> kept;
  for (const auto& c : recipe::list_checkpoints(t.str())) kept.push_back(fs::path(c.path).filename().string() + " " + c.run_id);
  CHECK(kept == std::vector<std::string>{"step-000005 other", "step-1000000 this", "step-1000001 this"});
  CHECK(recipe::latest_checkpoint(t.str()) == t.str("checkpoints/step-1000001"));
  CHECK(recipe::read_train_state(t.str("checkpoints/step-1000001")).run_id == "this");
}

TEST_CASE("reliability: a truncated optimizer.pt or a state.json of the wrong type names the file", "[reliability]") {
  test::TempDir t;
  torch::nn::Linear model(8, 8);
  auto opt = torch::optim::AdamW(model->parameters());
  model(torch::randn({2, 8})).sum().backward();
  opt.step();
  recipe::TrainState st;
  st.global_step = 3;
  recipe::save_checkpoint(t.str(), *model, &opt, st, "x: 1\n", 5);
  const std::string ck = t.str("checkpoints/step-000003");
  fs::resize_file(ck + "/optimizer.pt", fs::file_size(ck + "/optimizer.pt") / 2);
  auto opt2 = torch::optim::AdamW(model->parameters());
  CHECK_THROWS_WITH(recipe::load_checkpoint_optimizer(ck, opt2),
                    Contains(ck + "/optimizer.pt: cannot read the optimizer state (truncated or corrupt"));
  std::ofstream(ck + "/state.json") << "{\"stage\": \"zero\", \"stage_step\": 0}";
  CHECK_THROWS_WITH(recipe::read_train_state(ck), Contains("state.json: field 'stage' must be a non-negative integer, got \"zero\""));
  std::ofstream(ck + "/state.json") << "{\"stage\": 0, \"stage_step\": 0, \"global_step\": 3, \"stage_total\": 4}";
  CHECK_THROWS_WITH(recipe::read_train_state(ck), Contains("missing field 'stage_done'"));
}

// ---- third pass: readers check what the next layer assumes -----------------------------------------------------

namespace {
// A byte-level BPE tokenizer.json with the 256 byte symbols, no merges, GPT-2's pre-tokenizer regex, and `extra`
// spliced into the top level (added_tokens ...); `vocab_edit` replaces the vocabulary's first entry.
std::string byte_level_json(const std::string& extra = "", const std::string& first_entry = "") {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[data::hf::byte_to_unicode(static_cast<uint8_t>(b))] = b;
  std::string v = vocab.dump();
  if (!first_entry.empty()) v = "{" + first_entry + "," + v.substr(1);
  return R"({"model": {"type": "BPE", "vocab": )" + v +
         R"(, "merges": []}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
            "decoder": {"type": "ByteLevel"})" + extra + "}";
}
}  // namespace

TEST_CASE("reliability: tokenizer.json ids within the vocabulary, unique added ids, type errors with the key",
          "[reliability]") {
  test::TempDir t;
  auto load = [&](const std::string& name, const std::string& text) {
    return data::load_tokenizer(t.file(name + "/tokenizer.json", text));
  };
  REQUIRE(load("ok", byte_level_json())->vocab_size() == 256);
  // a negative id crashed (an out-of-bounds write), a huge one allocated a 2-billion-entry table
  CHECK_THROWS_WITH(load("neg", byte_level_json("", R"("neg": -5)")),
                    Contains("neg/tokenizer.json: model.vocab[\"neg\"]: id -5 is outside the vocabulary (0..256"));
  CHECK_THROWS_WITH(load("huge", byte_level_json("", R"("huge": 2000000000)")),
                    Contains("huge/tokenizer.json: model.vocab[\"huge\"]: id 2000000000 is outside the vocabulary"));
  CHECK_THROWS_WITH(load("frac", byte_level_json("", R"("frac": 1.5)")),
                    Contains("frac/tokenizer.json: model.vocab[\"frac\"]: id must be an integer, got 1.5"));
  CHECK_THROWS_WITH(load("dupvocab", byte_level_json("", R"("dup": 7)")), Contains("dupvocab/tokenizer.json: model.vocab: tokens") &&
                                                                               Contains("share id 7"));
  const std::string two_added =
      R"(, "added_tokens": [{"id": 256, "content": "<a>", "special": true}, {"id": 256, "content": "<b>", "special": true}])";
  CHECK_THROWS_WITH(load("shared", byte_level_json(two_added)),
                    Contains("shared/tokenizer.json: added_tokens[1]: \"<b>\" has id 256, already the id of added token \"<a>\""));
  CHECK_THROWS_WITH(load("addedfar", byte_level_json(R"(, "added_tokens": [{"id": 300, "content": "<a>"}])")),
                    Contains("addedfar/tokenizer.json: added_tokens[0].id: id 300 is outside the vocabulary (0..256"));
  // nlohmann's bare "[json.exception.type_error.302]" becomes the key
  CHECK_THROWS_WITH(load("type", byte_level_json(R"(, "added_tokens": [{"id": 256, "content": 5}])")),
                    Contains("type/tokenizer.json: added_tokens[0]: type must be string, but is number") &&
                        !Contains("json.exception"));
  CHECK_THROWS_WITH(load("missing", byte_level_json(R"(, "added_tokens": [{"content": "<a>"}])")),
                    Contains("missing/tokenizer.json: added_tokens[0].id: key 'id' not found"));
}

TEST_CASE("reliability: pre-tokenisation is linear in the text", "[reliability]") {
  // PCRE2 re-checked the UTF-8 of the whole rest of the text at every match: 25k / 100k words took 4.4 / 48.8 s.
  test::TempDir t;
  auto tok = data::load_tokenizer(t.file("tokenizer.json", byte_level_json()));
  auto words = [](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += i % 7 ? "word " : "Größe, 12 ";
    return s;
  };
  auto seconds = [&](const std::string& text, size_t* ids) {
    const auto t0 = std::chrono::steady_clock::now();
    *ids = tok->encode(text).size();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const std::string small = words(25000), large = words(100000);
  size_t n_small = 0, n_large = 0;
  seconds(small, &n_small);  // warm-up (the word cache)
  const double t_small = seconds(small, &n_small), t_large = seconds(large, &n_large);
  CHECK(n_small == small.size());  // one id per byte: no merges
  CHECK(n_large == large.size());
  INFO("25k words " << t_small << " s, 100k words " << t_large << " s");
  CHECK(t_large < 2.0);                       // was 48.8 s
  CHECK(t_large < 10 * std::max(t_small, 1e-3));  // 4x the text: linear ~4x, quadratic ~16x
}

TEST_CASE("reliability: names that become paths are checked", "[reliability]") {
  for (std::string ok : {"run", "phantom-7b", "Größe_1.5", "実験"}) CHECK(util::path_name_problem(ok).empty());
  CHECK(util::path_name_problem("") == "empty");
  CHECK(util::path_name_problem("a/b") == "holds a path separator '/'");
  CHECK(util::path_name_problem("a\\b") == "holds a path separator '\\'");
  CHECK(util::path_name_problem("..") == "'..' is not a name");
  CHECK(util::path_name_problem("a\x01") == "holds the control byte 1 at offset 1");
  CHECK(util::path_name_problem("a\n") == "holds the control byte 10 at offset 1");
  CHECK(util::path_name_problem("\xff") == "is not valid UTF-8 (byte 255 at offset 0)");
  CHECK(util::path_name_problem("\xC0\xAF") == "is not valid UTF-8 (byte 192 at offset 0)");  // overlong '/'
  CHECK(util::path_name_problem("\xED\xA0\x80") == "is not valid UTF-8 (byte 237 at offset 0)");  // a surrogate
  CHECK(util::path_name_problem("a\xC2\x85") == "holds a control character at offset 1");  // U+0085 (NEL)
  // the config names the key
  test::TempDir t;
  CHECK_THROWS_WITH(recipe::load_run_config(t.file("c.yaml", "run:\n  name: \"\"\n"), {}), Contains("run.name: empty"));
  CHECK_THROWS_WITH(recipe::load_run_config(t.file("d.yaml", "run:\n  name: runs/x\n"), {}),
                    Contains("run.name: holds a path separator '/'"));
  // enum choices never show a blank first choice
  config::Check k = config::Check::one_of({"", "conversations", "preference"});
  CHECK(k.describe() == "one of conversations, preference (or empty)");
}

TEST_CASE("reliability: benchmark files with duplicate ids or no questions are errors naming the file", "[reliability]") {
  test::TempDir t;
  const std::string head = "index\tquestion\tA\tB\tanswer\tcategory\timage\n";
  const std::string png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
  auto row = [&](const std::string& id) { return id + "\tWhat?\tyes\tno\tA\tc\t" + png + "\n"; };
  const std::string dup = t.file("dup.tsv", head + row("1") + row("2") + row("1"));
  CHECK_THROWS_WITH(eval::read_benchmark(eval::Bench::MMBench, {dup}),
                    Contains("dup.tsv: index '1' appears twice (lines 2 and 4)"));
  const std::string empty = t.file("empty.tsv", head);
  CHECK_THROWS_WITH(eval::read_benchmark(eval::Bench::MMBench, {empty}),
                    Contains("empty.tsv: no mmbench questions (the file holds no rows)"));
  // every row bad and skipped: no questions either
  const std::string bad = t.file("bad.tsv", head + "1\tWhat?\tyes\tno\tZ\tc\t" + png + "\n");
  eval::ReadOptions skip;
  skip.skip_bad_rows = true;
  CHECK_THROWS_WITH(eval::read_benchmark(eval::Bench::MMBench, {bad}, skip),
                    Contains("bad.tsv: no mmbench questions (all 1 rows were bad and skipped)"));
  // the hint names the caller's switch, or none
  eval::ReadOptions trainer;
  trainer.skip_hint = "";
  CHECK_THROWS_WITH(eval::read_benchmark(eval::Bench::MMBench, {bad}, trainer),
                    Contains("(fix or remove these rows)") && !Contains("ReadOptions"));
  // JSONL readers too: two POPE questions of one id in a split file
  const std::string img = t.file("a.png", *eval::files::base64_decode(png));
  const std::string q = R"({"question_id": 3, "image": "a.png", "text": "Is there a cat?", "label": "yes"})";
  const std::string pope = t.file("coco_pope_random.json", q + "\n" + q + "\n");
  CHECK_THROWS_WITH(eval::read_benchmark(eval::Bench::POPE, {pope}, eval::ReadOptions{t.str()}),
                    Contains("question id 'random/3' appears twice (questions 1 and 2"));
}

TEST_CASE("reliability: config.json special ids within the vocabulary", "[reliability]") {
  test::TempDir t;
  auto write = [&](const std::string& name, const std::string& extra) {
    t.file(name + "/config.json",
           R"({"architectures": ["PhantomForCausalLM"], "llm_config": {"architectures": ["Qwen2ForCausalLM"],
               "model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
               "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100},
               "vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
               "num_attention_heads": 2, "patch_size": 7, "image_size": 28}, "downsample_ratio": 0.5, "ps_version": "v2")" + extra + "}");
    return t.str(name);
  };
  ModelConfig c;
  CHECK_NOTHROW(read_hf_config(write("ok", R"(, "eos_token_id": 99, "image_token_index": 98)"), c));
  CHECK_THROWS_WITH(read_hf_config(write("eos", R"(, "eos_token_id": [5, 100])"), c),
                    Contains("eos/config.json: eos_token_id (config.json or generation_config.json) 100 is outside the vocabulary (vocab_size 100)"));
  CHECK_THROWS_WITH(read_hf_config(write("img", R"(, "image_token_index": -7)"), c),
                    Contains("img/config.json: image_token_index -7 is outside the vocabulary"));
}

TEST_CASE("reliability: a config.json layer count other than the checkpoint's names the file and key", "[reliability]") {
  test::TempDir t;
  PhantomModel m(test::tiny_vlm_config());  // 2 decoder layers, 1 ViT layer
  save_phantom(*m, t.str("m"));
  auto edit = [&](const char* section, int64_t layers) {
    fs::remove_all(t.str("e"));
    fs::copy(t.str("m"), t.str("e"));
    std::ifstream in(t.str("e/config.json"));
    nlohmann::json j = nlohmann::json::parse(in);
    j[section]["num_hidden_layers"] = layers;
    std::ofstream(t.str("e/config.json")) << j.dump();
    return t.str("e");
  };
  CHECK_NOTHROW(load_phantom(t.str("m"), ModelConfig{}));
  // what a config.json without the key gets (a class default) differs from the tensors: said before loading
  CHECK_THROWS_WITH(load_phantom(edit("llm_config", 3), ModelConfig{}),
                    Contains("e/config.json: the LLM config num_hidden_layers is 3") && Contains("holds 2 layers"));
  CHECK_THROWS_WITH(load_phantom(edit("vision_config", 2), ModelConfig{}),
                    Contains("e/config.json: vision_config num_hidden_layers is 2") && Contains("holds 1 layers"));
}
