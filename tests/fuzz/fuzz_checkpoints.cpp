// Fuzz targets of the checkpoint files a resume or a model load reads: state.json (recipe::read_train_state, seeds
// written by the trainer's own writer) and model.safetensors.index.json (st::Checkpoint over the shards that
// st::save_sharded wrote; the shards stay valid, the index is mutated). An accepted index must give every tensor
// it lists, readable to its last byte.
#include <stdexcept>

#include <ATen/ATen.h>

#include "phantom/io/safetensors.h"
#include "tests/fuzz/fuzz.h"
#include "trainers/recipe/train_state.h"

namespace phantom::fuzz {

std::vector<Target> checkpoint_targets(const fs::path& dir) {
  std::vector<Target> out;
  {
    recipe::TrainState a;
    a.stage = 1, a.stage_step = 17, a.global_step = 530, a.stage_total = 120, a.data.epoch = 2, a.data.batch = 33;
    a.global_batch = 8, a.grad_accum = 4, a.base_global_batch = 8, a.run_id = "20261207-214500-1a2b";
    a.ref_identity = "sha256:0123abcd";
    recipe::TrainState b;  // an older checkpoint: no batch geometry, no run id, a finished stage
    b.stage_done = true, b.global_step = 3;
    const fs::path ckpt = dir / "step-000530";
    fs::create_directories(ckpt);
    Target t{"state.json", {recipe::train_state_json(a), recipe::train_state_json(b)}, nullptr, "state.json"};
    t.run = [ckpt](const std::string& s) {
      write(ckpt / "state.json", s);
      const recipe::TrainState st = recipe::read_train_state(ckpt.string());
      for (int64_t v : {st.stage, st.stage_step, st.global_step, st.stage_total, st.data.epoch, st.data.batch,
                        st.global_batch, st.grad_accum, st.base_global_batch})
        if (v < 0) throw std::logic_error("a negative count was accepted");
    };
    out.push_back(std::move(t));
  }
  {
    const fs::path d = dir / "sharded";
    fs::create_directories(d);
    // Four tensors over three shards (24 + 16 + 8 + 6 bytes, 30-byte shards), as save_llm writes a large model.
    const std::vector<std::pair<std::string, at::Tensor>> tensors = {
        {"model.embed_tokens.weight", at::arange(6, at::kFloat)},
        {"model.layers.0.mlp.weight", at::arange(4, at::kFloat).reshape({2, 2})},
        {"model.norm.weight", at::ones({2}, at::kFloat)},
        {"lm_head.weight", at::zeros({3}, at::kHalf)}};
    const auto written = st::save_sharded(d.string(), tensors, 30, {{"format", "pt"}});
    const fs::path index = written.back();
    if (index.filename() != "model.safetensors.index.json") throw std::logic_error("the seed was not sharded");
    Target t{"model.safetensors.index.json", {read(index)}, nullptr, "model.safetensors.index.json"};
    t.run = [index](const std::string& s) {
      write(index, s);
      st::Checkpoint c(index.string());
      for (const auto& name : c.names()) {
        at::Tensor x = c.get(name).contiguous();
        const auto* p = static_cast<const uint8_t*>(x.data_ptr());
        volatile uint8_t sum = 0;
        for (size_t k = 0; k < x.nbytes(); ++k) sum = sum + p[k];
      }
    };
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace phantom::fuzz
