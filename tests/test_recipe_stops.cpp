// How the recipe ends when something is wrong or someone asks it to stop (docs/training.md, "Checkpoints and
// resume"): resume checks, broken weights, all-skipped stages, SIGTERM while steps are being skipped, a data error
// after some steps, and the run-directory lock.
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include "phantom/io/checkpoint.h"
#include "phantom/util/dir_lock.h"
#include "phantom/util/stop.h"
#include "tests/helpers.h"
#include "tests/tiny.h"
#include "trainers/recipe/train_state.h"

using namespace phantom;
namespace fs = std::filesystem;

namespace {

struct Data : test::DemoDataDir {
  Data() : DemoDataDir(48) {}
  recipe::RunConfig config(const std::string& name, std::vector<std::string> more = {}) const {
    const std::string d = dir.str("data");
    std::vector<std::string> o = {"run.name=" + name, "run.output_dir=" + dir.str("runs"),
                                  "data.train=" + d + "/train.jsonl", "data.val=", "data.image_root=" + d,
                                  "data.tokenizer=" + d + "/tokenizer.json", "data.batch_size=4",
                                  "stages.0.max_steps=3", "stages.1.max_steps=4", "stages.2.max_steps=2",
                                  "optim.warmup_steps=2", "checkpoint.every_steps=2", "model.llm.num_layers=2",
                                  "validation.benchmark="};
    o.insert(o.end(), more.begin(), more.end());
    return recipe::load_run_config(test::source_path("configs/demo.yaml"), o);
  }
  std::string run_dir(const std::string& name) const { return dir.str("runs/" + name); }
};

// The recipe's model saved as an HF checkpoint with every element of the tensors named `suffix` set to `value`.
std::string poisoned_model(const Data& d, const std::string& suffix, float value) {
  auto cfg = d.config("x");
  PhantomModel m(cfg.model);
  init_weights(*m);
  int hit = 0;
  torch::NoGradGuard ng;
  for (auto& p : m->named_parameters())
    if (p.key().size() >= suffix.size() && p.key().compare(p.key().size() - suffix.size(), suffix.size(), suffix) == 0)
      p.value().fill_(value), ++hit;
  REQUIRE(hit > 0);
  const std::string dir = d.dir.str("poisoned" + std::to_string(std::abs(value) > 1e30 ? 1 : 0));
  save_phantom(*m, dir);
  return dir;
}

}  // namespace

TEST_CASE("recipe: resume refuses a changed batch geometry and a checkpoint without optimizer.pt") {
  Data d;
  auto first = test::run(d.config("r"), "", 5);  // stops inside stage step1 (2 of its 4 steps done)
  REQUIRE(first.interrupted);
  CHECK_THROWS_WITH(test::run(d.config("r", {"data.batch_size=8"}), "latest"),
                    Catch::Contains("the run's optimiser steps hold 4 samples (global micro-batch 4 when it started x "
                                    "grad_accum 1); this launch's micro-batch of 8 (data.batch_size 8 per rank x 1 rank) "
                                    "does not divide 4"));
  CHECK_THROWS_WITH(test::run(d.config("r", {"optim.grad_accum=2"}), "latest"),
                    Catch::Contains("the checkpoint's optimiser steps hold 4 samples (global micro-batch 4 x grad_accum 1); "
                                    "this config asks 8 (4 x grad_accum 2)"));
  const auto ckpt = recipe::latest_checkpoint(d.run_dir("r"));
  REQUIRE(ckpt);
  CHECK(recipe::read_train_state(*ckpt).global_batch == 4);
  fs::remove(fs::path(*ckpt) / "optimizer.pt");
  CHECK_THROWS_WITH(test::run(d.config("r"), "latest"), Catch::Contains("optimizer.pt is missing"));
}

TEST_CASE("recipe: NaN weights are refused at load, and a stage whose every step is skipped exports nothing") {
  Data d;
  const auto nan_dir = poisoned_model(d, "vision_proj.1.weight", std::nanf(""));
  CHECK_THROWS_WITH(test::run(d.config("nan", {"model.path=" + nan_dir})),
                    Catch::Contains("parameter vision_proj.1.weight holds NaN or Inf values"));
  // Finite but huge weights: every forward overflows, every step is skipped.
  const auto huge_dir = poisoned_model(d, "model.norm.weight", 3e38f);
  CHECK_THROWS_WITH(test::run(d.config("huge", {"model.path=" + huge_dir})),
                    Catch::Contains("stage warmup: all 3 steps were skipped (non-finite loss); nothing exported"));
  CHECK_FALSE(fs::exists(d.run_dir("huge") + "/warmup"));
}

TEST_CASE("recipe: SIGTERM while every step is being skipped stops at the next step with a checkpoint") {
  Data d;
  const auto huge_dir = poisoned_model(d, "model.norm.weight", 3e38f);
  util::StopOnSignals ours;  // SIGTERM never reaches the default action, whenever the thread raises it
  std::atomic<bool> done{false};
  std::thread term([&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    while (!done) std::raise(SIGTERM), std::this_thread::sleep_for(std::chrono::milliseconds(50));
  });
  recipe::RecipeResult r;
  try {
    r = test::run(d.config("term", {"model.path=" + huge_dir, "stages.0.max_steps=100000"}));
  } catch (...) {
    done = true, term.join();
    throw;
  }
  done = true, term.join();
  CHECK(r.interrupted);
  const auto ckpt = recipe::latest_checkpoint(d.run_dir("term"));
  REQUIRE(ckpt);
  const auto st = recipe::read_train_state(*ckpt);
  CHECK(st.stage == 0);
  CHECK(st.stage_step > 0);
  CHECK(st.stage_step < 100000);
}

TEST_CASE("recipe: a bad sample under on_error=fail checkpoints the steps before it, and fixed data resumes") {
  Data d;
  // Line 40 of an unshuffled file is in global batch 10 (batch 4): steps 1-9 succeed, step 10 fails.
  const std::string train = d.dir.str("data/train.jsonl"), bad = d.dir.str("data/bad.jsonl");
  std::ofstream(d.dir.str("data/images/corrupt.png")) << "not a PNG";  // exists (the reader checks), fails to decode
  {
    std::ifstream in(train);
    std::ofstream out(bad);
    std::string line;
    for (int no = 1; std::getline(in, line); ++no) {
      if (no == 40) {
        const auto at = line.find("images/train/");
        line.replace(at, line.find('"', at) - at, "images/corrupt.png");
      }
      out << line << "\n";
    }
  }
  auto cfg = d.config("bad", {"data.train=" + bad, "data.shuffle=false", "data.group_by_length=false", "stages.0.max_steps=12",
                              "checkpoint.every_steps=100"});
  CHECK_THROWS_WITH(test::run(cfg), Catch::Contains("bad.jsonl:40"));
  const auto ckpt = recipe::latest_checkpoint(d.run_dir("bad"));
  REQUIRE(ckpt);
  const auto st = recipe::read_train_state(*ckpt);
  CHECK(st.stage == 0);
  CHECK(st.stage_step == 9);
  CHECK(st.data.batch == 9);
  // The data fixed, --resume continues from step 9 of the stage.
  fs::copy_file(train, bad, fs::copy_options::overwrite_existing);
  auto resumed = test::run(cfg, "latest", 1);
  CHECK(resumed.interrupted);
  CHECK(resumed.losses.size() == 1);
}

TEST_CASE("recipe: a run directory is locked by one process at a time, naming the holder") {
  test::TempDir t;
  fs::create_directories(t.path / "run");
  {
    util::DirLock first(t.str("run"));
    CHECK_THROWS_WITH(util::DirLock(t.str("run")),
                      Catch::Contains("is in use by process " + std::to_string(::getpid())) &&
                          Catch::Contains("run/.lock"));
  }
  CHECK_NOTHROW(util::DirLock(t.str("run")));  // released with its owner
}

TEST_CASE("recipe: a file checked row by row as read (data.upfront_check_mb=0) resumes exactly, its bad rows skipped") {
  Data d;
  // The demo file with a malformed line and a row whose image is missing: found only when the loader reads them.
  const std::string train = d.dir.str("data/train.jsonl"), bad = d.dir.str("data/lazy.jsonl");
  {
    std::ifstream in(train);
    std::ofstream out(bad);
    std::string line;
    for (int no = 1; std::getline(in, line); ++no) {
      if (no == 7) line = "{\"id\": \"broken\", \"question\": ";
      if (no == 20) {
        const auto at = line.find("images/train/");
        line.replace(at, line.find('"', at) - at, "images/absent.png");
      }
      out << line << (no == 48 ? "" : "\r\n");  // CRLF, no final newline
    }
  }
  const std::vector<std::string> lazy = {"data.train=" + bad, "data.upfront_check_mb=0", "data.on_error=skip"};
  auto full = test::run(d.config("lazy_full", lazy));
  REQUIRE(full.losses.size() == 9);
  auto first = test::run(d.config("lazy_half", lazy), "", 5);
  CHECK(first.interrupted);
  auto second = test::run(d.config("lazy_half", lazy), "latest", 0);
  test::check_resumed_losses(first, second, full);
  // Under fail the first bad row read stops the run, named by its line.
  auto strict = d.config("lazy_fail", {"data.train=" + bad, "data.upfront_check_mb=0", "data.shuffle=false",
                                       "data.group_by_length=false", "checkpoint.every_steps=100"});
  CHECK_THROWS_WITH(test::run(strict), Catch::Contains("lazy.jsonl:7: malformed JSON"));
}
