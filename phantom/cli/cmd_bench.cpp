// phantom bench model|decode: timing of the model itself (training step, decoding) for scripts/bench/model.sh.
#include <chrono>
#include <cstdio>

#include <fstream>

#include "phantom/checkpoint.h"
#include "phantom/cli/commands.h"
#include "phantom/runtime.h"
#include "trainers/optim.h"

namespace phantom::cli {

static const char* kBenchHelp =
    "usage: phantom bench model|decode [--hidden 896 --layers 4 --heads 14 --kv-heads 2 --intermediate 4864\n"
    "                                   --vocab 151655 --seq 512 --batch 1 --steps 5 --warmup 2 --phantom gate]\n"
    "  model:  training step (forward + backward + AdamW) of the decoder, tokens/s\n"
    "  decode: greedy decoding tokens/s with the KV cache and without (full recompute each step)\n"
    "  generate: batched generation tokens/s (--batch prompts of --seq tokens, --new-tokens each, --beams K,\n"
    "            no eos); --save DIR writes the model (HF format) and the generated ids for\n"
    "            scripts/bench/generate_ref.py\n";

int cmd_bench(int argc, char** argv) {
  Args a = parse_args(argc, argv, 3,
                      {"hidden", "layers", "heads", "kv-heads", "intermediate", "vocab", "seq", "batch", "steps", "warmup",
                       "phantom", "threads", "new-tokens", "beams", "save"},
                      {"help"});
  if (a.has("help") || argc < 3) {
    std::fputs(kBenchHelp, stdout);
    return argc < 3 ? 2 : 0;
  }
  const std::string what = argv[2];
  set_threads(std::stoll(a.get("threads", "0")));
  torch::manual_seed(0);
  LlmConfig c;
  c.hidden_size = std::stoll(a.get("hidden", "896"));
  c.num_layers = std::stoll(a.get("layers", "4"));
  c.num_heads = std::stoll(a.get("heads", "14"));
  c.num_kv_heads = std::stoll(a.get("kv-heads", "2"));
  c.intermediate_size = std::stoll(a.get("intermediate", "4864"));
  c.vocab_size = std::stoll(a.get("vocab", "151655"));
  c.max_position_embeddings = 32768;
  const int64_t seq = std::stoll(a.get("seq", "512")), batch = std::stoll(a.get("batch", "1"));
  const int64_t steps = std::stoll(a.get("steps", "5")), warmup = std::stoll(a.get("warmup", "2"));
  DecoderLM lm(c, parse_phantom_mode(a.get("phantom", "gate")), 1e-4);
  using Clock = std::chrono::steady_clock;
  if (what == "model") {
    train::OptimConfig oc;
    std::vector<at::Tensor> params;
    for (auto& p : lm->parameters()) params.push_back(p);
    torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-5));
    auto ids = torch::randint(0, c.vocab_size, {batch, seq});
    double total = 0;
    for (int64_t s = 0; s < warmup + steps; ++s) {
      const auto t0 = Clock::now();
      DecoderInputs in;
      in.embeds = lm->embed(ids);
      auto logits = lm->forward(in);
      auto loss = torch::nn::functional::cross_entropy(logits.view({-1, c.vocab_size}).narrow(0, 0, batch * seq - 1),
                                                       ids.view({-1}).narrow(0, 1, batch * seq - 1));
      loss.backward();
      opt.step();
      opt.zero_grad();
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      if (s >= warmup) total += dt;
    }
    std::printf("train_step tokens/s %.1f  (%.1f ms/step, batch %lld x seq %lld, %lld layers, phantom %s)\n",
                static_cast<double>(batch * seq * steps) / total, 1e3 * total / static_cast<double>(steps),
                static_cast<long long>(batch), static_cast<long long>(seq), static_cast<long long>(c.num_layers),
                a.get("phantom", "gate").c_str());
    return 0;
  }
  if (what == "decode") {
    torch::NoGradGuard ng;
    lm->eval();
    const int64_t new_tokens = std::stoll(a.get("new-tokens", "64"));
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
  if (what == "generate") {
    torch::NoGradGuard ng;
    lm->eval();
    // A prompt both sides can rebuild without sharing a file: id = 10 + (31 b + 7 t) mod (V - 10).
    auto prompt = torch::empty({batch, seq}, torch::kInt64);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < seq; ++t) prompt[b][t] = 10 + (31 * b + 7 * t) % (c.vocab_size - 10);
    GenerationConfig gc;
    gc.max_new_tokens = std::stoll(a.get("new-tokens", "32"));
    gc.num_beams = std::stoll(a.get("beams", "3"));
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
  throw UsageError("unknown bench '" + what + "' (model | decode | generate)");
}

}  // namespace phantom::cli
