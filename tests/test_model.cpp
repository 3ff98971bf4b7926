// Numeric parity of the model with the Python references (tests/tools/model_reference.py), fp32 on CPU:
// HF transformers for the plain LLMs, an independent straightforward PyTorch Phantom decoder, a plain InternViT.
#include <cstdlib>

#include "phantom/io/checkpoint.h"
#include "phantom/model/generate.h"
#include "tests/helpers.h"

using namespace phantom;
using phantom::test::TempDir;

namespace {

// Runs the reference tool; returns its output directory's tensors.
StateDict reference(const TempDir& t, const std::string& args) {
  const std::string cmd = std::string(PHANTOM_PYTHON) + " " + test::source_path("tests/tools/model_reference.py") +
                          " " + args + " --out " + t.str() + " > " + t.str("ref.log") + " 2>&1";
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
  return read_checkpoint_tensors(t.str("expected.safetensors"));
}

double max_diff_on(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  auto m = mask.to(torch::kBool);
  return (a - b).abs().index({m}).max().item<double>();
}

at::Tensor logits_of(DecoderLMImpl& lm, const at::Tensor& ids, const at::Tensor& mask) {
  torch::NoGradGuard ng;
  DecoderInputs in;
  in.embeds = lm.embed(ids);
  in.attention_mask = mask;
  return lm.forward(in);
}

void zero_xattn(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& p : m.named_parameters())
    if (p.key().find("xattn_") != std::string::npos) p.value().zero_();
}

}  // namespace

TEST_CASE("model: Qwen2 logits equal HF transformers, identity oracle, generation equals HF") {
  TempDir t;
  auto ref = reference(t, "hf-llm --family qwen2 --generate --eos 14");
  auto lm = load_llm(t.str("model"), PhantomMode::off, 1e-4, /*strict=*/true);
  for (const char* side : {"right", "left"}) {
    INFO(side);
    auto got = logits_of(*lm, ref[std::string("ids_") + side], ref[std::string("mask_") + side]);
    CHECK(max_diff_on(got, ref[std::string("logits_") + side], ref[std::string("mask_") + side]) < 1e-4);
  }
  auto long_logits = logits_of(*lm, ref["ids_long"], torch::ones_like(ref["ids_long"]));
  CHECK((long_logits - ref["logits_long"]).abs().max().item<double>() < 1e-4);

  // Identity oracle: the Phantom graph with zero XAttn weights is the plain model.
  LoadReport report;
  auto ph = load_llm(t.str("model"), PhantomMode::gate, 1e-4, /*strict=*/false, &report);
  CHECK(report.created.size() == 2 * (12 + 4));  // 2 layers x (3 XAttn x 4 + 2 gates x 2)
  zero_xattn(*ph);
  auto got = logits_of(*ph, ref["ids_left"], ref["mask_left"]);
  CHECK(max_diff_on(got, ref["logits_left"], ref["mask_left"]) < 1e-4);

  // Greedy (20 tokens) and beam search (3 beams) produce HF generate's tokens.
  auto prompt = ref["gen_prompt"], pmask = ref["gen_mask"];
  GenerationConfig gc;
  gc.max_new_tokens = 20;
  auto greedy = generate(*lm, lm->embed(prompt), pmask, gc);
  gc.num_beams = 3;
  gc.eos_token_ids = {14};
  auto beams = generate(*lm, lm->embed(prompt), pmask, gc);
  const int64_t L = prompt.size(1);
  for (int64_t b = 0; b < prompt.size(0); ++b) {
    INFO("row " << b);
    auto hf = ref["gen_greedy"][b].narrow(0, L, 20);
    CHECK(torch::tensor(greedy.tokens[b]).equal(hf));
    auto hb = ref["gen_beam3"][b];
    std::vector<int64_t> expect;
    for (int64_t i = L; i < hb.size(0); ++i) {
      expect.push_back(hb[i].item<int64_t>());
      if (expect.back() == 14) break;
    }
    CHECK(beams.tokens[b] == expect);
  }
}

TEST_CASE("model: Phi-3 logits equal HF transformers (fused qkv/gate_up, longrope short and long)") {
  TempDir t;
  auto ref = reference(t, "hf-llm --family phi3");
  auto lm = load_llm(t.str("model"), PhantomMode::off, 1e-4, true);
  for (const char* side : {"right", "left"}) {
    INFO(side);
    auto got = logits_of(*lm, ref[std::string("ids_") + side], ref[std::string("mask_") + side]);
    CHECK(max_diff_on(got, ref[std::string("logits_") + side], ref[std::string("mask_") + side]) < 1e-4);
  }
  auto long_logits = logits_of(*lm, ref["ids_long"], torch::ones_like(ref["ids_long"]));
  CHECK((long_logits - ref["logits_long"]).abs().max().item<double>() < 1e-4);
}

TEST_CASE("model: InternLM2 interleaved wqkv layout gives the reference logits") {
  TempDir t;
  auto ref = reference(t, "hf-llm --family internlm2");
  auto lm = load_llm(t.str("model"), PhantomMode::off, 1e-4, true);
  auto got = logits_of(*lm, ref["ids_left"], ref["mask_left"]);
  CHECK(max_diff_on(got, ref["logits_left"], ref["mask_left"]) < 1e-4);
  // Saving writes the interleaved layout back: the files' tensors equal the originals.
  TempDir out;
  save_llm(*lm, out.str("saved"));
  auto a = read_checkpoint_tensors(t.str("model")), b = read_checkpoint_tensors(out.str("saved"));
  REQUIRE(a.size() == b.size());
  for (auto& [name, tensor] : a) {
    INFO(name);
    REQUIRE(b.count(name));
    CHECK(tensor.equal(b[name]));
  }
}

TEST_CASE("model: Phantom attention equals the straightforward reference, logits and gradients") {
  struct Case {
    const char* args;
    double tol;
  };
  for (auto c : {Case{"phantom --eta 0.3 --mode gate --kv-heads 2", 1e-5}, Case{"phantom --eta 1e-4 --mode gate --kv-heads 4", 1e-5},
                 Case{"phantom --eta 0.3 --mode sum --kv-heads 1", 1e-5}, Case{"phantom --eta 0.3 --mode mean --kv-heads 2", 1e-5},
                 Case{"phantom --eta 0.3 --mode gate --kv-heads 2 --repeat-first", 1e-5}}) {
    INFO(c.args);
    TempDir t;
    auto ref = reference(t, c.args);
    std::string mode = std::string(c.args).find("sum") != std::string::npos    ? "sum"
                       : std::string(c.args).find("mean") != std::string::npos ? "mean"
                                                                                : "gate";
    const double eta = std::string(c.args).find("0.3") != std::string::npos ? 0.3 : 1e-4;
    // Strict for the gate variant; sum/mean have no gate tensors, so the reference's gates are unexpected there.
    auto lm = load_llm(t.str("model"), parse_phantom_mode(mode), eta, /*strict=*/mode == "gate");
    for (const char* side : {"right", "left"}) {
      INFO(side);
      const std::string s = side;
      auto ids = ref["ids_" + s], mask = ref["mask_" + s];
      lm->zero_grad();
      DecoderInputs in;
      in.embeds = lm->embed(ids);
      in.attention_mask = mask;
      auto logits = lm->forward(in);
      CHECK(max_diff_on(logits.detach(), ref["logits_" + s], mask) < c.tol);
      (logits * ref["weights_" + s] * mask.unsqueeze(-1)).sum().backward();
      // Our gradients, renamed to the reference's (HF Qwen2) names through the same mapping as saving.
      StateDict grads;
      for (auto& p : lm->named_parameters())
        if (p.value().grad().defined()) grads[p.key()] = p.value().grad();
      auto hf_grads = llm_to_hf(grads, lm->cfg, "");
      int compared = 0;
      for (auto& [name, g] : hf_grads) {
        auto it = ref.find("grad_" + s + "." + name);
        INFO(name);
        REQUIRE(it != ref.end());
        const double scale = std::max(1.0, it->second.abs().max().item<double>());
        CHECK((g - it->second).abs().max().item<double>() / scale < 1e-5);
        ++compared;
      }
      CHECK(compared > 30);
    }
  }
}

TEST_CASE("model: cached decoding equals full recompute for 20 steps (Phantom, left padding)") {
  TempDir t;
  auto ref = reference(t, "phantom --eta 0.3 --mode gate --kv-heads 2");
  auto lm = load_llm(t.str("model"), PhantomMode::gate, 0.3, true);
  auto ids = ref["ids_left"].narrow(1, 20, 20).clone(), mask = ref["mask_left"].narrow(1, 20, 20).clone();
  GenerationConfig gc;
  gc.max_new_tokens = 20;
  auto res = generate(*lm, lm->embed(ids), mask, gc);
  // Recompute: append the generated tokens and run the whole sequence without a cache; greedy must agree.
  torch::NoGradGuard ng;
  for (int64_t b = 0; b < ids.size(0); ++b) {
    auto row_ids = torch::cat({ids[b], torch::tensor(res.tokens[b])}).unsqueeze(0);
    auto row_mask = torch::cat({mask[b], torch::ones({20}, mask.options())}).unsqueeze(0);
    auto logits = logits_of(*lm, row_ids, row_mask);
    auto pred = logits[0].narrow(0, 19, 20).argmax(-1);
    INFO("row " << b);
    CHECK(pred.equal(torch::tensor(res.tokens[b])));
  }
  // And step by step: the cache path's logits equal the full forward's at every position.
  auto cache = lm->new_cache();
  DecoderInputs pre;
  pre.embeds = lm->embed(ids);
  pre.attention_mask = mask;
  auto first = lm->forward(pre, &cache);
  auto full_ids = torch::cat({ids, torch::stack({torch::tensor(res.tokens[0]), torch::tensor(res.tokens[1]),
                                                 torch::tensor(res.tokens[2])})}, 1);
  auto full_mask = torch::cat({mask, torch::ones({3, 20}, mask.options())}, 1);
  auto full = logits_of(*lm, full_ids, full_mask);
  CHECK(max_diff_on(first, full.narrow(1, 0, 20), mask) < 1e-5);
  double worst = 0;
  for (int64_t s = 0; s < 19; ++s) {
    DecoderInputs st;
    st.embeds = lm->embed(full_ids.narrow(1, 20 + s, 1));
    st.attention_mask = torch::ones({3, 1}, mask.options());
    auto step_logits = lm->forward(st, &cache);
    worst = std::max(worst, (step_logits.squeeze(1) - full.select(1, 20 + s)).abs().max().item<double>());
  }
  CHECK(worst < 1e-5);
}

TEST_CASE("model: InternViT + pixel shuffle + projector equal the reference (native and interpolated grid)") {
  TempDir t;
  auto ref = reference(t, "vision");
  ModelConfig cfg;
  cfg.vision.hidden_size = 32;
  cfg.vision.num_heads = 4;
  cfg.vision.intermediate_size = 64;
  cfg.vision.num_layers = 2;
  cfg.vision.image_size = 56;
  cfg.vision.patch_size = 14;
  cfg.llm.hidden_size = 48;
  cfg.llm.num_heads = 4;
  cfg.llm.num_kv_heads = 2;
  cfg.llm.num_layers = 1;
  cfg.llm.intermediate_size = 64;
  cfg.llm.vocab_size = 64;
  PhantomModel model(cfg);
  auto weights = read_checkpoint_tensors(t.str("model"));
  torch::NoGradGuard ng;
  for (auto& p : model->named_parameters()) {
    auto it = weights.find(p.key());
    if (it != weights.end()) p.value().copy_(it->second);
  }
  CHECK(model->tokens_per_tile() == 4);
  auto out = model->encode_images(ref["pixels"]);
  CHECK((out - ref["out"]).abs().max().item<double>() < 1e-5);
  auto out_big = model->encode_images(ref["pixels_big"]);
  CHECK((out_big - ref["out_big"]).abs().max().item<double>() < 1e-5);

  // Splicing: visual tokens replace the placeholders in order; a count mismatch is an error.
  model->image_token_index = 7;
  auto ids = torch::tensor({1, 7, 7, 7, 7, 2}).unsqueeze(0);
  auto emb = model->embed_inputs(ids, ref["pixels"].narrow(0, 0, 1));
  CHECK((emb[0].narrow(0, 1, 4) - out[0]).abs().max().item<double>() < 1e-5);  // batch of 1 vs 3 tiles
  CHECK(emb[0][0].equal(model->language_model->embed(torch::tensor({1}))[0]));
  CHECK_THROWS_WITH(model->embed_inputs(ids, ref["pixels"].narrow(0, 0, 2)),
                    Catch::Contains("4 <IMG_CONTEXT> placeholders") && Catch::Contains("8 visual tokens"));
}

TEST_CASE("model: saved checkpoints load in Python, strict mode names every problem") {
  TempDir t;
  reference(t, "phantom --eta 0.3 --mode gate --kv-heads 2");
  auto lm = load_llm(t.str("model"), PhantomMode::gate, 0.3, true);
  // A Phantom model around this LLM, saved in HF layout and read back by the Python reference.
  ModelConfig cfg;
  cfg.phantom_eta = 0.3;
  cfg.vision.hidden_size = 32, cfg.vision.num_heads = 4, cfg.vision.intermediate_size = 64, cfg.vision.num_layers = 1;
  cfg.vision.image_size = 56;
  cfg.llm = lm->cfg;
  PhantomModel pm(cfg);
  {
    torch::NoGradGuard ng;
    auto src = module_state_dict(*lm);
    for (auto& p : pm->named_parameters()) {
      const std::string prefix = "language_model.";
      if (p.key().rfind(prefix, 0) == 0) p.value().copy_(src.at(p.key().substr(prefix.size())));
    }
  }
  save_phantom(*pm, t.str("saved"));
  auto ids = torch::randint(3, 256, {2, 17}), mask = torch::ones({2, 17}, torch::kInt64);
  mask[1].narrow(0, 0, 5).zero_();
  StateDict expect{{"ids", ids}, {"mask", mask}, {"logits", logits_of(*lm, ids, mask)}};
  write_checkpoint_tensors(t.str("cpp_logits.safetensors"), expect);
  const std::string cmd = std::string(PHANTOM_PYTHON) + " " + test::source_path("tests/tools/model_reference.py") +
                          " check-saved --eta 0.3 --out " + t.str() + " > " + t.str("check.log") + " 2>&1";
  CHECK(std::system(cmd.c_str()) == 0);
  // And it loads back in C++, strictly.
  LoadReport rep;
  auto again = load_phantom(t.str("saved"), cfg, &rep);
  CHECK(rep.missing.empty());
  CHECK(rep.created.empty());

  // Strict loading of a plain LLM into a Phantom model names the missing Phantom tensors.
  TempDir plain;
  reference(plain, "hf-llm --family qwen2");
  CHECK_THROWS_WITH(load_llm(plain.str("model"), PhantomMode::gate, 1e-4, true),
                    Catch::Contains("missing (32)") && Catch::Contains("gating_phantom_1.bias"));
  // A mis-shaped tensor is named with both shapes; an unexpected one is an error in strict mode.
  auto sd = module_state_dict(*lm);
  sd["model.norm.weight"] = torch::ones({65});
  CHECK_THROWS_WITH(load_state_dict(*lm, sd, false), Catch::Contains("model.norm.weight: checkpoint [65] vs model [64]"));
  sd = module_state_dict(*lm);
  sd["model.extra.weight"] = torch::ones({3});
  CHECK_THROWS_WITH(load_state_dict(*lm, sd, true), Catch::Contains("unexpected (1): model.extra.weight"));
  CHECK(load_state_dict(*lm, sd, false).unexpected == std::vector<std::string>{"model.extra.weight"});
}
