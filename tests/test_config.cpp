// Config loading: types, ranges, includes, overrides, unknown keys with suggestions, round trip, and the
// documentation rules every shipped YAML follows.
#include <filesystem>
#include <fstream>
#include <regex>

#include "tests/helpers.h"
#include "trainers/recipe/run_config.h"

using phantom::config::ConfigError;
using phantom::test::TempDir;
namespace fs = std::filesystem;

static std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("config: overrides set typed values and lists") {
  TempDir t;
  auto f = t.file("a.yaml", "optim:\n  lr: 1e-4\nstages:\n  - name: s1\n    trainable: ['.*']\n");
  auto c = phantom::recipe::load_run_config(f, {"optim.lr=2e-5", "data.batch_size=4", "stages.0.epochs=0.5",
                                               "stages.0.trainable=[a, b]", "stages.0.optim.lr=3e-3"});
  CHECK(c.optim.lr == Approx(2e-5));
  CHECK(c.data.batch_size == 4);
  REQUIRE(c.stages.size() == 1);
  CHECK(c.stages[0].epochs == 0.5);
  CHECK(c.stages[0].trainable == std::vector<std::string>{"a", "b"});
  CHECK(c.stages[0].optim.resolve(c.optim).lr == Approx(3e-3));
  CHECK(c.stages[0].optim.resolve(c.optim).min_lr == Approx(c.optim.min_lr));  // inherited
  CHECK(c.stages[0].loss == phantom::recipe::LossKind::sft);  // the default
  // ORPO's lambda is its own key: beta does not set it, and the stage's LossConfig carries both.
  auto o = phantom::recipe::load_run_config(f, {"stages.0.loss=orpo", "preference.beta=3", "preference.orpo_lambda=0.25"});
  CHECK(o.stages[0].loss == phantom::recipe::LossKind::orpo);
  const auto lc = o.preference.loss(o.stages[0].loss);
  CHECK(lc.kind == phantom::recipe::LossKind::orpo);
  CHECK(lc.beta == 3.0);
  CHECK(lc.orpo_lambda == 0.25);
  CHECK(phantom::recipe::load_run_config(f, {}).preference.orpo_lambda == 0.1);  // the ORPO paper's lambda
}

TEST_CASE("config: base includes are applied before the including file") {
  TempDir t;
  t.file("base.yaml", "optim:\n  lr: 1e-4\n  min_lr: 1e-6\ndata:\n  batch_size: 3\n");
  auto f = t.file("child.yaml", "base: base.yaml\noptim:\n  lr: 5e-5\n");
  auto c = phantom::recipe::load_run_config(f, {});
  CHECK(c.optim.lr == Approx(5e-5));
  CHECK(c.optim.min_lr == Approx(1e-6));
  CHECK(c.data.batch_size == 3);
}

TEST_CASE("config: errors name the key, the file and line, and suggest") {
  TempDir t;
  auto f = t.file("bad.yaml", "run:\n  seed: 1\noptim:\n  lr: 1e-4\n  betaa1: 0.9\n");
  auto e = error_of([&] { phantom::recipe::load_run_config(f, {}); });
  CHECK(e.find("unknown key 'optim.betaa1'") != std::string::npos);
  CHECK(e.find("bad.yaml:5") != std::string::npos);
  CHECK(e.find("did you mean 'optim.beta1'") != std::string::npos);

  auto g = t.file("type.yaml", "data:\n  batch_size: many\n");
  e = error_of([&] { phantom::recipe::load_run_config(g, {}); });
  CHECK(e.find("data.batch_size: expected a decimal integer (no leading zeros, no hex), got 'many' (") != std::string::npos);
  CHECK(e.find("type.yaml:2") != std::string::npos);

  auto ok = t.file("ok.yaml", "data:\n  batch_size: 2\n");
  e = error_of([&] { phantom::recipe::load_run_config(ok, {"data.batch_size=0"}); });
  CHECK(e.find("data.batch_size: expected a value > 0") != std::string::npos);

  e = error_of([&] { phantom::recipe::load_run_config(t.str("missing.yaml"), {}); });
  CHECK(e.find("config file not found") != std::string::npos);

  auto cyc = t.file("cyc.yaml", "base: cyc.yaml\n");
  e = error_of([&] { phantom::recipe::load_run_config(cyc, {}); });
  CHECK(e.find("include cycle") != std::string::npos);

  auto badyaml = t.file("syntax.yaml", "optim:\n  lr: [1, 2\n");
  e = error_of([&] { phantom::recipe::load_run_config(badyaml, {}); });
  CHECK(e.find("invalid YAML in") != std::string::npos);

  e = error_of([&] { phantom::recipe::load_run_config(ok, {"stages.3.lr=1"}); });
  CHECK(e.find("stages.3") != std::string::npos);

  // A stage's loss is an enum parsed with the config: a bad name names the key, the file and line, the choices.
  auto loss = t.file("loss.yaml", "stages:\n  - name: s1\n    trainable: ['.*']\n    loss: orpoo\n");
  e = error_of([&] { phantom::recipe::load_run_config(loss, {}); });
  CHECK(e.find("stages.0.loss: expected one of sft, po, simpo, dpo, ipo, orpo, got 'orpoo'") != std::string::npos);
  CHECK(e.find("loss.yaml:4") != std::string::npos);
  CHECK(e.find("did you mean 'orpo'") != std::string::npos);
  e = error_of([&] { phantom::recipe::load_run_config(ok, {"preference.orpo_lambda=-1"}); });
  CHECK(e.find("preference.orpo_lambda: expected a value >= 0") != std::string::npos);

  e = error_of([&] { phantom::recipe::load_run_config(t.file("h.yaml", "model:\n  llm:\n    num_heads: 3\n"), {}); });
  CHECK(e.find("model.llm.hidden_size (896) must be a multiple of model.llm.num_heads (3)") != std::string::npos);
}

TEST_CASE("config: the resolved YAML loads back to the same config") {
  auto c = phantom::recipe::load_run_config(phantom::test::source_path("configs/demo.yaml"), {"optim.lr=0.00123"});
  const std::string y1 = phantom::recipe::resolved_yaml(c, "x", {});
  TempDir t;
  auto c2 = phantom::recipe::load_run_config(t.file("r.yaml", y1), {});
  CHECK(phantom::recipe::resolved_yaml(c2, "x", {}) == y1);
  CHECK(c2.optim.lr == Approx(0.00123));
}

TEST_CASE("configs/: every YAML starts with its command, documents every key, and loads") {
  const std::regex key_line(R"(^\s*(- )?[A-Za-z_][A-Za-z0-9_]*:)");
  int files = 0;
  for (auto& entry : fs::recursive_directory_iterator(phantom::test::source_path("configs"))) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    std::ifstream in(entry.path());
    std::string line, prev;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (n == 1) {
        INFO(entry.path().string());
        CHECK(line.rfind("# Run: ", 0) == 0);
      }
      if (std::regex_search(line, key_line)) {
        INFO(entry.path().string() << ":" << n << ": " << line);
        const bool commented = line.find(" # ") != std::string::npos || prev.find_first_not_of(' ') != std::string::npos &&
                                                                          prev[prev.find_first_not_of(' ')] == '#';
        CHECK(commented);
      }
      prev = line;
    }
    INFO(entry.path().string());
    CHECK_NOTHROW(phantom::recipe::load_run_config(entry.path().string(), {}));
  }
  CHECK(files > 0);
}

TEST_CASE("tests/: no test name contains a semicolon (ctest would split it into tests that run nothing)") {
  const std::regex name(R"(TEST_CASE\("([^"]*)\")");
  for (auto& entry : fs::directory_iterator(phantom::test::source_path("tests"))) {
    if (entry.path().extension() != ".cpp") continue;
    std::ifstream in(entry.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (std::sregex_iterator it(text.begin(), text.end(), name), end; it != end; ++it) {
      INFO(entry.path().string() << ": " << (*it)[1]);
      CHECK((*it)[1].str().find(';') == std::string::npos);
    }
  }
}
