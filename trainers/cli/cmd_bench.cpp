// phantom bench model|decode|po|train: timings of the model itself (training step, decoding) for
// scripts/bench/model.sh, and of the trainer's steps (PO layouts, per-stage throughput) for scripts/bench/train.sh.

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <fstream>

#include "data/collate.h"
#include "phantom/io/checkpoint.h"
#include "phantom/util/parse.h"
#include "trainers/cli/commands.h"
#include "trainers/cli/flags.h"
#include "trainers/cli/step_timing.h"
#include "phantom/model/runtime.h"
#include "trainers/recipe/head_loss.h"
#include "trainers/recipe/losses.h"
#include "trainers/recipe/optim.h"
#include "trainers/recipe/metrics.h"
#include "trainers/recipe/trainer.h"

namespace phantom::cli {

static const char* kBenchHelp =
    "usage: phantom bench model|decode|generate|po|train|pack [--hidden 896 --layers 4 --heads 14 --kv-heads 2 --intermediate 4864\n"
    "                                   --vocab 151655 --seq 512 --batch 1 --steps 5 --warmup 2 --phantom gate]\n"
    "  model:  training step (forward + backward + AdamW) of the decoder, tokens/s, peak memory; --device cpu|cuda;\n"
    "          --head chunked|full (LM head + cross-entropy in row chunks, or B x L x V logits), --optim fused|torch\n"
    "  decode: greedy decoding tokens/s with the KV cache and without (full recompute each step)\n"
    "  generate: batched generation tokens/s (--batch prompts of --seq tokens, --new-tokens each, --beams K,\n"
    "            no eos); --save DIR writes the model (HF format) and the generated ids for\n"
    "            scripts/bench/generate_ref.py\n"
    "  po:     trainer step time (forward + backward + AdamW) of the same questions as SFT on the chosen answer,\n"
    "          PO with the shared prefix, PO naive; --prompts 256,1024,1792 --answer 32 --rejected 1 --batch 1\n"
    "          --layout sft|shared|naive: that layout alone (its peak resident memory)\n"
    "  pack:   SFT step on --batch samples of skewed lengths (--tile-tokens x 1-7 tiles + text): padded rows vs\n"
    "          packed rows of --row tokens (data.packing), tokens/s ratio\n"
    "  train:  one stage's training step: --stage step1 (PO, projector + Phantom trainable) | step2 (SFT, all);\n"
    "          tokens/s, model TFLOP/s, peak resident memory of the process (run one stage per process)\n"
    "  --precision fp32|bf16 (autocast), --trainable all|step1 (po)\n";

namespace {
using Clock = std::chrono::steady_clock;

// model: the decoder's training step alone (forward + backward + AdamW), tokens/s and peak memory.
int bench_model(const Args& a, const LlmConfig& c, int64_t seq, int64_t batch, int64_t steps, int64_t warmup) {
  // --device cuda --precision bf16: the GPU comparison with scripts/bench/model_ref.py (scripts/gpu/check.sh).
  const c10::Device dev = pick_device(a.get("device", "cpu"));
  const auto ac = AutocastState::for_compute(pick_compute_dtype(a.get("precision", "fp32"), dev), dev);
  DecoderLM lm(c, parse_phantom_mode(a.get("phantom", "gate")), 1e-4);
  lm->to(dev);
  std::vector<at::Tensor> params;
  for (auto& p : lm->parameters()) params.push_back(p);
  // The trainer's path (chunked LM head + cross-entropy, fused AdamW); --head full / --optim torch: the
  // unfused pieces, for the ablation in docs/benchmarks.md.
  const bool chunked = a.get("head", "chunked") == "chunked", fused = a.get("optim", "fused") == "fused";
  std::unique_ptr<torch::optim::AdamW> opt;
  if (fused) opt = std::make_unique<recipe::FusedAdamW>(params, torch::optim::AdamWOptions(1e-5));
  else opt = std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(1e-5));
  auto ids = torch::randint(0, c.vocab_size, {batch, seq}).to(dev);
  double total = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    sync(dev);
    const auto t0 = Clock::now();
    at::Tensor loss;
    {
      AutocastScope scope(ac);
      DecoderInputs in;
      in.embeds = lm->embed(ids);
      if (chunked) {
        // Every position but the last predicts the next id: the rows of the head, (B * (L - 1), C).
        auto h = lm->forward_hidden(in).narrow(1, 0, seq - 1).reshape({-1, c.hidden_size});
        auto target = ids.narrow(1, 1, seq - 1).reshape({-1});
        loss = recipe::head_cross_entropy(h, lm->embed_tokens->weight, target, 1.0 / static_cast<double>(target.numel())).first;
      } else {
        auto logits = lm->forward(in);
        loss = torch::nn::functional::cross_entropy(
            logits.narrow(1, 0, seq - 1).reshape({-1, c.vocab_size}).to(torch::kFloat),
            ids.narrow(1, 1, seq - 1).reshape({-1}));
      }
    }
    loss.backward();
    opt->step();
    opt->zero_grad();
    sync(dev);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (s >= warmup) total += dt;
  }
  std::printf("train_step tokens/s %.1f  (%.1f ms/step, batch %lld x seq %lld, %lld layers, phantom %s, %s %s, head %s, "
              "AdamW %s) peak memory %.3f GB\n",
              static_cast<double>(batch * seq * steps) / total, 1e3 * total / static_cast<double>(steps),
              static_cast<long long>(batch), static_cast<long long>(seq), static_cast<long long>(c.num_layers),
              a.get("phantom", "gate").c_str(), dev.str().c_str(), ac.enabled() ? "bf16" : "fp32",
              chunked ? "chunked" : "full", fused ? "fused" : "torch", peak_memory_gb(dev));
  return 0;
}

// decode: greedy decoding with the KV cache against a full recompute at every new token.
int bench_decode(const Args& a, const LlmConfig& c, int64_t seq, int64_t batch, int64_t steps, int64_t warmup) {
  DecoderLM lm(c, parse_phantom_mode(a.get("phantom", "gate")), 1e-4);
  torch::NoGradGuard ng;
  lm->eval();
  const int64_t new_tokens = int_flag(a, "new-tokens", 64, 0);
  auto prompt = torch::randint(0, c.vocab_size, {batch, seq});
  GenerationConfig gc;
  gc.max_new_tokens = new_tokens;
  auto t0 = Clock::now();
  auto res = generate(*lm, lm->embed(prompt), at::Tensor(), gc);
  const double cached = std::chrono::duration<double>(Clock::now() - t0).count();
  // Without a cache: the whole sequence again for every new token.
  t0 = Clock::now();
  auto ids = prompt;
  for (int64_t t = 0; t < new_tokens; ++t) {
    DecoderInputs in;
    in.embeds = lm->embed(ids);
    auto h = lm->forward_hidden(in);
    auto next = lm->logits(h.select(1, h.size(1) - 1)).argmax(-1, true);
    ids = torch::cat({ids, next}, 1);
  }
  const double full = std::chrono::duration<double>(Clock::now() - t0).count();
  const double n = static_cast<double>(batch * new_tokens);
  std::printf("decode tokens/s with cache %.1f, without %.1f (x%.1f), prompt %lld, %lld new tokens\n", n / cached,
              n / full, full / cached, static_cast<long long>(seq), static_cast<long long>(new_tokens));
  return 0;
}

// generate: batched beam-search generation, tokens/s (and, with --save, the ids for generate_ref.py).
int bench_generate(const Args& a, const LlmConfig& c, int64_t seq, int64_t batch, int64_t steps, int64_t warmup) {
  DecoderLM lm(c, parse_phantom_mode(a.get("phantom", "gate")), 1e-4);
  torch::NoGradGuard ng;
  lm->eval();
  // A prompt both sides can rebuild without sharing a file: id = 10 + (31 b + 7 t) mod (V - 10).
  auto prompt = torch::empty({batch, seq}, torch::kInt64);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t) prompt[b][t] = 10 + (31 * b + 7 * t) % (c.vocab_size - 10);
  GenerationConfig gc;
  gc.max_new_tokens = int_flag(a, "new-tokens", 32, 0);
  gc.num_beams = int_flag(a, "beams", 3, 1);
  GenerationResult res;
  double total = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    const auto t0 = Clock::now();
    res = generate(*lm, lm->embed(prompt), torch::ones({batch, seq}, torch::kInt64), gc);
    if (s >= warmup) total += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  int64_t produced = 0;
  for (auto& r : res.tokens) produced += static_cast<int64_t>(r.size());
  std::printf("generate tokens/s %.1f  (%.1f ms/run, batch %lld x %lld new tokens, beams %lld, prompt %lld) ours\n",
              static_cast<double>(produced * steps) / total, 1e3 * total / static_cast<double>(steps),
              static_cast<long long>(batch), static_cast<long long>(gc.max_new_tokens),
              static_cast<long long>(gc.num_beams), static_cast<long long>(seq));
  if (a.has("save")) {
    save_llm(*lm, a.get("save"));
    std::ofstream out(a.get("save") + "/generated.txt");
    for (auto& r : res.tokens) {
      for (size_t i = 0; i < r.size(); ++i) out << (i ? " " : "") << r[i];
      out << "\n";
    }
  }
  return 0;
}

// The trainer's own path for po | pack | train: a PhantomModel (tiny ViT, unused: text prompts), the stage's
// trainable set, batch_loss + AdamW.
struct TrainerBench {
  ModelConfig mc;
  PhantomModel model{nullptr};
  AutocastState ac;
  recipe::Trainable trainable;
  std::unique_ptr<torch::optim::AdamW> opt;
  std::string precision;
  bool step1 = false;  // projector + Phantom tensors trainable (paper step 1), else everything

  // Median step times of `batches` trained interleaved (one loss each) on this model and optimiser.
  std::vector<StepTiming> time(const std::vector<const data::Batch*>& batches,
                               const std::vector<recipe::LossConfig>& losses, int64_t warmup, int64_t steps) {
    return time_interleaved(*model, batches, losses, *opt, trainable.params, ac, c10::Device(c10::kCPU), warmup, steps);
  }
};

TrainerBench trainer_bench(const Args& a, const LlmConfig& c, bool step1) {
  TrainerBench tb;
  tb.mc.llm = c;
  tb.mc.phantom = a.get("phantom", "gate");
  tb.mc.vision.image_size = 28, tb.mc.vision.patch_size = 7, tb.mc.vision.hidden_size = 32, tb.mc.vision.num_layers = 1;
  tb.mc.vision.num_heads = 2, tb.mc.vision.intermediate_size = 64;
  tb.mc.image_token_index = 5;
  tb.model = PhantomModel(tb.mc);
  init_weights(*tb.model);
  tb.model->image_token_index = 5;
  tb.model->train();
  tb.precision = a.get("precision", "fp32");
  tb.ac = AutocastState::for_compute(pick_compute_dtype(tb.precision, c10::Device(c10::kCPU)), c10::Device(c10::kCPU));
  tb.step1 = step1;
  tb.trainable = recipe::select_trainable(
      *tb.model, step1 ? std::vector<std::string>{"^vision_proj\\.", "_phantom"} : std::vector<std::string>{".*"});
  tb.opt = recipe::make_adamw(tb.trainable, recipe::OptimConfig{});
  return tb;
}

// pack: SFT on a length-skewed batch, padded rows vs packed rows (data.packing).
int bench_pack(TrainerBench& tb, const Args& a, const LlmConfig& c, int64_t seq, int64_t batch, int64_t steps, int64_t warmup) {
  // SFT on a length-skewed batch: each sample is `tile-tokens` x tiles (1-7, skewed to few, as dynamic
  // tiling of mixed images gives) + a text of 20-80 tokens; padded rows vs packed rows (data.packing).
  const int64_t tile_tokens = int_flag(a, "tile-tokens", 256, 1), row = int_flag(a, "row", 2048, 1);
  const std::vector<int64_t> tiles_of = {1, 1, 1, 1, 2, 2, 3, 5, 7};  // drawn uniformly: P(1 tile) = 4/9
  std::vector<data::EncodedConversation> samples;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t t = tiles_of[static_cast<size_t>(torch::randint(0, static_cast<int64_t>(tiles_of.size()), {1}).item<int64_t>())];
    const int64_t text = torch::randint(20, 81, {1}).item<int64_t>(), answer_len = text / 3;
    auto q = bench_questions(1, t * tile_tokens + text - answer_len, answer_len, 0, c.vocab_size)[0];
    samples.push_back(data::chosen_as_conversation(q));
  }
  auto padded = data::collate_sft(samples, {}, 0);
  auto packed = data::collate_sft_packed(samples, {}, 0, row);
  auto t = tb.time({&padded, &packed}, {{recipe::LossKind::sft}, {recipe::LossKind::sft}}, warmup, steps);
  auto pad_share = [](const data::Batch& b) { return 100.0 * (1.0 - static_cast<double>(b.num_tokens) / static_cast<double>(b.num_slots)); };
  std::printf("pack %lld samples, %lld tokens (median of %lld interleaved steps): padded %lldx%lld rows %.1f ms "
              "(padding %.0f%%), packed %lldx%lld rows %.1f ms (padding %.0f%%) | packed/padded tokens/s %.2fx\n",
              static_cast<long long>(batch), static_cast<long long>(padded.num_tokens), static_cast<long long>(steps),
              static_cast<long long>(padded.input_ids.size(0)), static_cast<long long>(padded.input_ids.size(1)),
              t[0].ms, pad_share(padded), static_cast<long long>(packed.input_ids.size(0)),
              static_cast<long long>(packed.input_ids.size(1)), t[1].ms, pad_share(packed), t[0].ms / t[1].ms);
  return 0;
}

// po: SFT on the chosen answer vs PO with the shared prefix vs PO naive, per prompt length.
int bench_po(TrainerBench& tb, const Args& a, const LlmConfig& c, int64_t seq, int64_t batch, int64_t steps, int64_t warmup) {
  const int64_t answer = int_flag(a, "answer", 32, 1), rejected = int_flag(a, "rejected", 1, 1);
  std::vector<int64_t> prompts;
  for (auto& s : split(a.get("prompts", "256,1024,1792"), ',')) {
    int64_t v = 0;
    if (!util::parse_int(s, v) || v < 1)
      throw UsageError("--prompts: '" + s + "' is not a positive integer (a comma-separated list, e.g. 256,1024)");
    prompts.push_back(v);
  }
  std::printf("# decoder hidden %lld, %lld layers, vocab %lld, batch %lld, answers %lld tokens, %lld rejected, "
              "trainable %s (%lld), %s\n",
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_layers),
              static_cast<long long>(c.vocab_size), static_cast<long long>(batch), static_cast<long long>(answer),
              static_cast<long long>(rejected), tb.step1 ? "projector + Phantom" : "all",
              static_cast<long long>(tb.trainable.count), tb.precision.c_str());
  for (auto P : prompts) {
    auto qs = bench_questions(batch, P, answer, rejected, c.vocab_size);
    auto [b_sft, b_shared, b_naive] = po_layouts(qs);
    if (a.has("layout")) {
      // One layout in this process: its peak resident memory is this layout's (scripts/bench/train.sh).
      const std::string l = a.get("layout");
      if (l != "sft" && l != "shared" && l != "naive") throw UsageError("--layout: sft | shared | naive");
      const data::Batch* b = l == "sft" ? &b_sft : l == "shared" ? &b_shared : &b_naive;
      auto t = tb.time({b}, {{l == "sft" ? recipe::LossKind::sft : recipe::LossKind::po}}, warmup, steps)[0];
      std::printf("po prompt %lld layout %s: %.1f ms (%lld tok), peak RSS %.3f GB\n", static_cast<long long>(P),
                  l.c_str(), t.ms, static_cast<long long>(t.tokens), peak_memory_gb(c10::Device(c10::kCPU)));
      continue;
    }
    auto t = tb.time({&b_sft, &b_shared, &b_naive}, {{recipe::LossKind::sft}, {recipe::LossKind::po}, {recipe::LossKind::po}},
                     warmup, steps);
    const auto &t_sft = t[0], &t_shared = t[1], &t_naive = t[2];
    std::printf("po prompt %lld (median of %lld interleaved steps): sft %.1f ms (%lld tok), po shared %.1f ms (%lld tok), po naive %.1f ms (%lld tok) | "
                "shared/sft %.2fx, naive/shared %.2fx\n",
                static_cast<long long>(P), static_cast<long long>(steps), t_sft.ms, static_cast<long long>(t_sft.tokens), t_shared.ms,
                static_cast<long long>(t_shared.tokens), t_naive.ms, static_cast<long long>(t_naive.tokens),
                t_shared.ms / t_sft.ms, t_naive.ms / t_shared.ms);
    std::fflush(stdout);
  }
  return 0;
}

// train: one stage's step on `batch` questions of `seq` tokens (prompt seq/2, answers seq/4 each for PO;
// SFT trains on prompt + chosen answer), tokens/s, model TFLOP/s, peak resident memory.
int bench_train(TrainerBench& tb, const std::string& stage, const Args& a, const LlmConfig& c, int64_t seq, int64_t batch, int64_t steps, int64_t warmup) {
  auto body = tb.mc;
  body.llm.vocab_size = 0;  // FLOPs: decoder body per token + the LM head per supervised row
  auto flops = [&](const StepTiming& t, int64_t len) {
    return recipe::train_flops_per_token(body, len) * static_cast<double>(t.tokens) +
           6.0 * static_cast<double>(c.hidden_size * c.vocab_size) * static_cast<double>(t.supervised);
  };
  const int64_t P = seq / 2, A = seq / 4;
  auto qs = bench_questions(batch, P, A, 1, c.vocab_size);
  data::Batch b;
  if (tb.step1) b = data::collate_preference(qs, {}, 0, true);
  else b = chosen_sft_batch(qs);
  auto t = tb.time({&b}, {{tb.step1 ? recipe::LossKind::po : recipe::LossKind::sft}}, warmup, steps)[0];
  auto [n_params, n_train] = count_parameters(*tb.model);
  (void)n_train;
  const double secs = t.ms / 1e3;
  std::printf("train %s (%s, %s): %lld params, %lld trainable, %lld tokens/step: %.1f tok/s, %.4f TFLOP/s, %.0f ms/step, "
              "peak RSS %.2f GB\n",
              stage.c_str(), tb.step1 ? "po" : "sft", tb.precision.c_str(), static_cast<long long>(n_params),
              static_cast<long long>(tb.trainable.count), static_cast<long long>(t.tokens),
              static_cast<double>(t.tokens) / secs, flops(t, b.input_ids.size(1)) / secs / 1e12, t.ms, peak_memory_gb(c10::Device(c10::kCPU)));
  return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  Args a = parse_args(argc, argv, 3,
                      {"hidden", "layers", "heads", "kv-heads", "intermediate", "vocab", "seq", "batch", "steps", "warmup",
                       "phantom", "threads", "new-tokens", "beams", "save", "prompts", "answer", "rejected", "stage",
                       "precision", "trainable", "device", "head", "optim", "layout", "row", "tile-tokens"},
                      {"help"});
  if (a.has("help") || argc < 3) {
    std::fputs(kBenchHelp, stdout);
    return argc < 3 ? 2 : 0;
  }
  const std::string what = argv[2];
  set_threads(threads_flag(a));
  torch::manual_seed(0);
  LlmConfig c;
  c.hidden_size = int_flag(a, "hidden", 896, 1);
  c.num_layers = int_flag(a, "layers", 4, 1);
  c.num_heads = int_flag(a, "heads", 14, 1);
  c.num_kv_heads = int_flag(a, "kv-heads", 2, 1);
  c.intermediate_size = int_flag(a, "intermediate", 4864, 1);
  c.vocab_size = int_flag(a, "vocab", 151655, 1);
  c.max_position_embeddings = 32768;
  const int64_t seq = int_flag(a, "seq", 512, 1), batch = int_flag(a, "batch", 1, 1);
  const int64_t steps = int_flag(a, "steps", 5, 1), warmup = int_flag(a, "warmup", 2, 0);
  if (what == "model") return bench_model(a, c, seq, batch, steps, warmup);
  if (what == "decode") return bench_decode(a, c, seq, batch, steps, warmup);
  if (what == "generate") return bench_generate(a, c, seq, batch, steps, warmup);
  if (what == "pack") {
    auto tb = trainer_bench(a, c, false);
    return bench_pack(tb, a, c, seq, batch, steps, warmup);
  }
  if (what == "po") {
    auto tb = trainer_bench(a, c, a.get("trainable", "step1") == "step1");
    return bench_po(tb, a, c, seq, batch, steps, warmup);
  }
  if (what == "train") {
    const std::string stage = a.get("stage", "step1");
    if (stage != "step1" && stage != "step2") throw UsageError("--stage: step1 | step2");
    auto tb = trainer_bench(a, c, stage == "step1");
    return bench_train(tb, stage, a, c, seq, batch, steps, warmup);
  }
  throw UsageError("unknown bench '" + what + "' (model | decode | generate | po | train | pack)");
}

}  // namespace phantom::cli
