#include "trainers/recipe/memory_measure.h"

#include <chrono>
#include <stdexcept>

#include "data/collate.h"
#include "phantom/model/cpu_allocator.h"
#include "phantom/model/model.h"
#include "phantom/model/runtime.h"
#include "trainers/recipe/losses.h"
#include "trainers/recipe/optim.h"
#include "trainers/recipe/stage_weights.h"

namespace phantom::recipe {

namespace {

constexpr int32_t kImageToken = 5;  // the synthetic rows' other ids are >= 10

std::vector<int32_t> random_ids(int64_t n, int64_t vocab) {
  auto t = torch::randint(10, vocab, {n}, torch::kInt64);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<int32_t>(t[i].item<int64_t>());
  return v;
}

double step(PhantomModelImpl& m, const data::Batch& b, const LossConfig& lc, torch::optim::Optimizer& opt,
            const std::vector<at::Tensor>& params, const AutocastState& ac) {
  const auto t0 = std::chrono::steady_clock::now();
  LossOut out;
  {
    AutocastScope scope(ac);
    out = batch_loss(m, b, lc, {b.num_sft_tokens, b.num_questions});
  }
  out.loss.backward();
  torch::nn::utils::clip_grad_norm_(params, 1.0);
  opt.step();
  opt.zero_grad();
  return 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

MeasuredStep measure_step(const RunConfig& cfg, const ModelConfig& model, size_t s) {
  if (s >= cfg.stages.size()) throw std::runtime_error("measure: no stage " + std::to_string(s));
  const auto& stage = cfg.stages[s];
  torch::manual_seed(0);
  reset_cpu_peak(true);  // count every block from the model's first tensor on
  ModelConfig mc = model;
  mc.image_token_index = kImageToken;
  PhantomModel m(mc);
  init_weights(*m);
  m->image_token_index = kImageToken;
  m->language_model->activation_checkpointing = cfg.activation_checkpointing;
  m->vision_model->activation_checkpointing = cfg.vision_checkpointing;
  m->train();
  const c10::Device cpu(c10::kCPU);
  const auto compute = pick_compute_dtype(cfg.run.precision == "bf16" ? "bf16" : "fp32", cpu);
  const auto frozen = frozen_storage_dtype(cfg.run.frozen_dtype, compute);
  auto trainable = prepare_stage_weights(*m, stage, frozen);
  auto opt = make_adamw(trainable, cfg.optim);

  const int64_t tiles = cfg.data.max_tiles + (cfg.data.max_tiles > 1 ? 1 : 0);
  const int64_t image_tokens = tiles * m->tokens_per_tile();
  const bool preference = needs_preference_data(stage.loss);
  // A row of max_length tokens: image + question, then the answers (chosen + one rejected when preference).
  const int64_t text = cfg.data.max_length - image_tokens;
  const int64_t answer = std::max<int64_t>(4, text / (preference ? 4 : 2));
  const int64_t question = text - (preference ? 2 : 1) * answer;
  if (question < 1)
    throw std::runtime_error("measure: " + std::to_string(tiles) + " tiles (" + std::to_string(image_tokens) +
                             " tokens) need a longer data.max_length than " + std::to_string(cfg.data.max_length));
  std::vector<data::EncodedPreference> qs;
  std::vector<data::SamplePixels> pixels;
  for (int64_t q = 0; q < cfg.data.batch_size; ++q) {
    data::EncodedPreference p;
    p.prompt.assign(static_cast<size_t>(image_tokens), kImageToken);
    const auto words = random_ids(question, mc.llm.vocab_size);
    p.prompt.insert(p.prompt.end(), words.begin(), words.end());
    for (int a = 0; a < (preference ? 2 : 1); ++a) p.answers.push_back(random_ids(answer, mc.llm.vocab_size));
    qs.push_back(std::move(p));
    pixels.push_back(torch::randn({tiles, 3, mc.vision.image_size, mc.vision.image_size}));
  }
  data::Batch b;
  if (preference) {
    b = data::collate_preference(qs, pixels, 0, cfg.shared_prefix);
  } else {
    std::vector<data::EncodedConversation> sft;
    for (auto& q : qs) sft.push_back(data::chosen_as_conversation(q));
    b = data::collate_sft(sft, pixels, 0);
  }
  const LossConfig lc = cfg.preference.loss(preference ? LossKind::po : LossKind::sft);
  const auto ac = AutocastState::for_compute(compute, cpu);
  step(*m, b, lc, *opt, trainable.params, ac);
  reset_cpu_peak(true);
  MeasuredStep r;
  r.ms = step(*m, b, lc, *opt, trainable.params, ac);
  r.peak_bytes = static_cast<int64_t>(cpu_cache_stats().peak_live_bytes);
  reset_cpu_peak(false);
  r.rows = b.input_ids.size(0), r.row_length = b.input_ids.size(1), r.tiles = tiles * cfg.data.batch_size;
  r.inputs = plan_inputs(cfg, s, 1);
  r.inputs.model = model;
  r.inputs.bf16 = compute == c10::kBFloat16;
  r.inputs.frozen_bytes = frozen == c10::kFloat ? 4 : 2;
  r.inputs.max_length = r.row_length;
  r.inputs.head_rows = b.targets.target.numel();
  r.plan = plan_memory(r.inputs);
  return r;
}

}  // namespace phantom::recipe
