// Fixtures shared by the model-level and trainer-level tests: the tiny VLM, gradient snapshots, the demo
// dataset made by the real converter in a temporary directory, and a recipe run in the config's run directory.
#pragma once

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "phantom/model/model_config.h"
#include "phantom/model/small_config.h"
#include "tests/helpers.h"
#include "trainers/recipe/run_config.h"
#include "trainers/recipe/trainer.h"

namespace phantom::test {

// ViT 1 layer x 16 wide on 28-px tiles (7-px patches), decoder 2 layers x 32 wide with GQA 4:2, vocabulary 64.
inline ModelConfig tiny_vlm_config() { return small_vlm_config(); }

// A copy of every defined gradient, by parameter name.
inline std::map<std::string, at::Tensor> grads_of(torch::nn::Module& m) {
  std::map<std::string, at::Tensor> g;
  for (auto& p : m.named_parameters())
    if (p.value().grad().defined()) g[p.key()] = p.value().grad().clone();
  return g;
}

// scripts/make_demo_data.py with `train` training triples (8 validation, 8 benchmark questions) in dir/data.
struct DemoDataDir {
  TempDir dir;
  explicit DemoDataDir(int train) {
    const std::string cmd = std::string(PHANTOM_PYTHON) + " " + source_path("scripts/make_demo_data.py") + " --out " +
                            dir.str("data") + " --train " + std::to_string(train) + " --val 8 --test 8 > " +
                            dir.str("data.log") + " 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
};

// The recipe of `c` in <output_dir>/<name>; `resume` and `stop_after` as recipe::run_recipe.
inline recipe::RecipeResult run(recipe::RunConfig c, const std::string& resume = "", int64_t stop_after = 0) {
  const std::string dir = c.run.output_dir + "/" + c.run.name;
  return recipe::run_recipe(c, dir, recipe::resolved_yaml(c, "test", {}), resume, stop_after);
}

// An interrupted run (`first`) continued from its checkpoint (`second`): their losses, joined, are bitwise those of
// the uninterrupted run (`full`).
inline void check_resumed_losses(const recipe::RecipeResult& first, const recipe::RecipeResult& second,
                                 const recipe::RecipeResult& full) {
  std::vector<double> all = first.losses;
  all.insert(all.end(), second.losses.begin(), second.losses.end());
  REQUIRE(all.size() == full.losses.size());
  for (size_t i = 0; i < all.size(); ++i) {
    INFO("step " << i);
    CHECK(all[i] == full.losses[i]);  // bitwise
  }
}

}  // namespace phantom::test
