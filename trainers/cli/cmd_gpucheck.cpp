// phantom gpucheck: what has never run on CUDA, checked and measured in one short run (scripts/gpu/check.sh,
// docs/gpu.md). Every step prints one line: "ok", "FAILED" or "skipped: no CUDA". Without a GPU the steps that
// can run on the CPU still do (at shrunk shapes), so the whole path is exercised before a GPU machine is lent.
//
//   parity      fp32 logits and loss of a random Phantom VLM (vision + projector + decoder): CUDA vs CPU, <= 1e-4
//   bf16        autocast bf16 vs fp32 on the same device: relative L2 of the logits <= 2 %
//   nccl        an NCCL process group of world 1: all-reduce of a CUDA tensor
//   po          PO step with the shared prefix vs naive vs SFT on the chosen answers (shared/SFT ratio)
//   step7b      a Qwen2-7B-shaped step (full width, --layers deep), tokens/s, TFLOP/s, MFU
// The binary prints measurements only; the performance goals they are held to live in scripts/gpu/check.sh.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "trainers/cli/commands.h"
#include "trainers/cli/flags.h"
#include "trainers/cli/step_timing.h"
#include "trainers/distributed/nccl.h"
#include "phantom/model/runtime.h"
#include "phantom/model/small_config.h"
#include "trainers/recipe/flops.h"
#include "trainers/recipe/losses.h"
#include "trainers/recipe/metrics.h"
#include "trainers/recipe/optim.h"

namespace phantom::cli {
namespace {

const char* kHelp =
    "usage: phantom gpucheck [--device auto|cpu] [--layers 4] [--seq 2048] [--batch 4] [--steps 5] [--warmup 2]\n"
    "                        [--peak-tflops T] [--only parity,bf16,nccl,po,step7b]\n"
    "  Checks and timings of the CUDA path (docs/gpu.md). Without CUDA (or with --device cpu) the CPU parts run at\n"
    "  shrunk shapes and the rest print 'skipped: no CUDA'. Exit status 1 when a check fails.\n"
    "  --layers/--seq/--batch: the 7B-shaped step (Qwen2-7B width, cut depth); --peak-tflops: for MFU (default: the\n"
    "  device's bf16 dense peak by name, docs/training.md: H100/H200 989, A100 312, A6000 154.8, RTX 3090 71).\n";

struct Report {
  int ok = 0, failed = 0, skipped = 0;
  void line(const char* step, const std::string& status, const std::string& detail) {
    std::printf("[gpucheck] %-8s %s%s%s\n", step, status.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    std::fflush(stdout);
  }
  void check(const char* step, bool pass, const std::string& detail) {
    (pass ? ok : failed)++;
    line(step, pass ? "ok" : "FAILED", detail);
  }
  void skip(const char* step, const std::string& what) {
    ++skipped;
    line(step, "skipped: no CUDA", what);
  }
  void info(const char* step, const std::string& detail) { line(step, "info", detail); }
};

std::string fmt_num(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A random Phantom VLM small enough for fp32 on both devices: ViT 2 x 64 on 56-px tiles, decoder 2 x 128 (GQA 4:2).
ModelConfig parity_config() {
  SmallVlmSize s;
  s.tile = 56, s.patch = 14, s.vit_width = 64, s.vit_layers = 2, s.vit_heads = 4;
  s.llm_width = 128, s.vocab = 512, s.context = 512;
  return small_vlm_config(s);
}

// Two samples of 40 tokens, one tile each, its visual tokens at positions 1.., the second sample right-padded.
ModelInputs parity_inputs(const PhantomModelImpl& m) {
  const int64_t B = 2, L = 40, n_img = m.tokens_per_tile();
  ModelInputs in;
  in.input_ids = torch::randint(10, m.cfg.llm.vocab_size, {B, L});
  in.input_ids.narrow(1, 1, n_img).fill_(m.cfg.image_token_index);
  in.attention_mask = torch::ones({B, L}, torch::kInt64);
  in.attention_mask[1].narrow(0, L - 7, 7).zero_();
  in.pixel_values = torch::randn({B, 3, m.cfg.vision.image_size, m.cfg.vision.image_size});
  return in;
}

ModelInputs inputs_to(ModelInputs in, const c10::Device& d) {
  for (at::Tensor* t : {&in.input_ids, &in.attention_mask, &in.pixel_values})
    if (t->defined()) *t = t->to(d);
  return in;
}

// Logits (fp32, on CPU) of the real positions, and the mean next-token loss over them.
std::pair<at::Tensor, double> logits_and_loss(PhantomModelImpl& m, const ModelInputs& in, const AutocastState& ac) {
  torch::NoGradGuard ng;
  at::Tensor logits;
  {
    AutocastScope scope(ac);
    logits = m.forward(in);
  }
  logits = logits.to(torch::kFloat).cpu();
  auto ids = in.input_ids.cpu(), mask = in.attention_mask.cpu().to(torch::kBool);
  const int64_t L = ids.size(1), V = logits.size(-1);
  auto pred = logits.narrow(1, 0, L - 1).reshape({-1, V});
  auto tgt = ids.narrow(1, 1, L - 1).reshape({-1});
  auto keep = mask.narrow(1, 1, L - 1).reshape({-1});
  const double loss = torch::nn::functional::cross_entropy(pred.index({keep}), tgt.index({keep})).item<double>();
  return {logits.index({mask}), loss};
}

double rel_l2(const at::Tensor& a, const at::Tensor& ref) {
  return ((a - ref).norm() / ref.norm()).item<double>();
}

// --- steps -------------------------------------------------------------------------------------------------------

void step_parity(Report& r, bool cuda) {
  torch::manual_seed(1);
  PhantomModel m(parity_config());
  init_weights(*m);
  m->image_token_index = 5;
  m->eval();
  const auto in = parity_inputs(*m);
  auto [cpu_logits, cpu_loss] = logits_and_loss(*m, in, {});
  auto [again, again_loss] = logits_and_loss(*m, in, {});
  const bool finite = torch::isfinite(cpu_logits).all().item<bool>();
  r.check("parity", finite && torch::equal(cpu_logits, again),
          "cpu fp32 logits " + std::to_string(cpu_logits.size(0)) + " x " + std::to_string(cpu_logits.size(1)) +
              " finite and repeatable, loss " + fmt_num("%.6f", cpu_loss));
  if (!cuda) return r.skip("parity", "CUDA fp32 logits vs CPU (<= 1e-4)");
  // IEEE fp32 on the GPU: no TF32 in cuBLAS or cuDNN (the ViT's patch embedding is a convolution).
  auto& ctx = at::globalContext();
  const bool tf32_blas = ctx.allowTF32CuBLAS(), tf32_dnn = ctx.allowTF32CuDNN();
  ctx.setAllowTF32CuBLAS(false);
  ctx.setAllowTF32CuDNN(false);
  const c10::Device dev(c10::kCUDA, 0);
  m->to(dev);
  auto [gpu_logits, gpu_loss] = logits_and_loss(*m, inputs_to(in, dev), {});
  ctx.setAllowTF32CuBLAS(tf32_blas);
  ctx.setAllowTF32CuDNN(tf32_dnn);
  const double max_abs = (gpu_logits - cpu_logits).abs().max().item<double>();
  const double scale = cpu_logits.abs().max().item<double>();
  r.check("parity", max_abs <= 1e-4 && std::abs(gpu_loss - cpu_loss) <= 1e-4,
          "CUDA vs CPU fp32 logits max |diff| " + fmt_num("%.2e", max_abs) + " (limit 1e-4; logits up to " +
              fmt_num("%.3g", scale) + "), loss " + fmt_num("%.7f", gpu_loss) + " vs " + fmt_num("%.7f", cpu_loss));
}

void step_bf16(Report& r, const c10::Device& dev) {
  torch::manual_seed(2);
  // On the GPU the decoder has Qwen2-0.5B's width (2 layers): bf16 rounding at a real width.
  ModelConfig c = parity_config();
  if (dev.is_cuda()) {
    c.llm.hidden_size = 896, c.llm.intermediate_size = 4864, c.llm.num_heads = 14, c.llm.num_kv_heads = 2;
    c.llm.vocab_size = 151655;
  }
  PhantomModel m(c);
  init_weights(*m);
  m->image_token_index = 5;
  m->eval();
  m->to(dev);
  const auto in = inputs_to(parity_inputs(*m), dev);
  auto [fp32, loss32] = logits_and_loss(*m, in, {});
  auto [bf16, loss16] = logits_and_loss(*m, in, AutocastState::for_compute(c10::kBFloat16, dev));
  const double rel = rel_l2(bf16, fp32), rel_loss = std::abs(loss16 - loss32) / std::abs(loss32);
  r.check("bf16", rel <= 0.02 && rel_loss <= 0.02,
          dev.str() + " autocast bf16 vs fp32 (decoder width " + std::to_string(c.llm.hidden_size) +
              "): logits relative L2 " + fmt_num("%.3f%%", 100 * rel) + ", loss " + fmt_num("%.5f", loss16) + " vs " +
              fmt_num("%.5f", loss32) + " (" + fmt_num("%.3f%%", 100 * rel_loss) + "), limit 2%");
}

void step_nccl(Report& r, bool cuda) {
  if (!cuda) return r.skip("nccl", "NCCL process group of world 1, all-reduce");
  auto store = c10::make_intrusive<c10d::HashStore>();
  auto pg = distributed::make_nccl_backend(store, 0, 1, std::chrono::milliseconds(60000), 0);
  std::vector<at::Tensor> t = {torch::arange(1 << 20, torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA))};
  const auto want = t[0].clone();
  pg->allreduce(t)->wait();
  auto b = std::vector<at::Tensor>{torch::full({4}, 3.0, torch::TensorOptions().device(torch::kCUDA))};
  pg->broadcast(b)->wait();
  torch::cuda::synchronize();
  r.check("nccl", torch::equal(t[0], want) && b[0].eq(3.0).all().item<bool>(),
          "world 1: all-reduce (sum) of 1M floats and a broadcast on cuda:0 returned their inputs");
}

// PO and SFT steps through the trainer's loss, with shapes for the device (a CPU dry run shrinks them).
void step_po(Report& r, const c10::Device& dev, int64_t warmup, int64_t steps) {
  const bool cuda = dev.is_cuda();
  torch::manual_seed(3);
  ModelConfig mc = parity_config();
  if (cuda) {  // Qwen2-0.5B width, 4 layers: `phantom bench po`'s shape
    mc.llm.hidden_size = 896, mc.llm.intermediate_size = 4864, mc.llm.num_heads = 14, mc.llm.num_kv_heads = 2;
    mc.llm.num_layers = 4, mc.llm.vocab_size = 151655, mc.llm.max_position_embeddings = 32768;
  }
  mc.phantom_eta = 1e-4;
  PhantomModel model(mc);
  init_weights(*model);
  model->image_token_index = 5;
  model->train();
  model->to(dev);
  const auto ac = AutocastState::for_compute(cuda ? c10::kBFloat16 : c10::kFloat, dev);
  auto trainable = recipe::select_trainable(*model, {"^vision_proj\\.", "_phantom"});  // PO stage (step 1)
  auto opt = recipe::make_adamw(trainable, recipe::OptimConfig{});
  const std::vector<int64_t> prompts = cuda ? std::vector<int64_t>{1024, 1792} : std::vector<int64_t>{96};
  const int64_t batch = cuda ? 4 : 2, answer = 32;
  for (int64_t P : prompts) {
    auto qs = bench_questions(batch, P, answer, 1, mc.llm.vocab_size);
    auto layouts = po_layouts(qs);
    auto b_sft = batch_to(layouts.sft, dev), b_shared = batch_to(layouts.shared, dev);
    auto b_naive = batch_to(layouts.naive, dev);
    auto t = time_interleaved(*model, {&b_sft, &b_shared, &b_naive}, {{recipe::LossKind::sft}, {recipe::LossKind::po}, {recipe::LossKind::po}}, *opt,
                              trainable.params, ac, dev, warmup, steps);
    const double ratio = t[1].ms / t[0].ms;
    const bool finite = std::isfinite(t[0].ms) && t[1].ms > 0 && t[2].ms > 0;
    r.check("po", finite,
            dev.str() + (cuda ? " bf16" : " fp32 (shrunk)") + ", batch " + std::to_string(batch) + ", prompt " +
                std::to_string(P) + ": sft " + fmt_num("%.1f ms", t[0].ms) + ", po shared " +
                fmt_num("%.1f ms", t[1].ms) + ", po naive " + fmt_num("%.1f ms", t[2].ms) + " | shared/sft " +
                fmt_num("%.2fx", ratio) +
                ", naive/shared " + fmt_num("%.2fx", t[2].ms / t[1].ms));
  }
  if (!cuda) r.skip("po", "the same at Qwen2-0.5B width, 4 layers, prompts 1024 and 1792, bf16");
}

// One SFT step of everything trainable at Qwen2-7B's width (cut to `layers`), bf16 autocast.
void step_7b(Report& r, const c10::Device& dev, int64_t layers, int64_t seq, int64_t batch, int64_t warmup,
             int64_t steps, double peak_tflops) {
  const bool cuda = dev.is_cuda();
  torch::manual_seed(4);
  ModelConfig mc = parity_config();
  auto& l = mc.llm;
  if (cuda) {  // Qwen2-7B: 3584 wide, 28 heads (GQA 7:1), SwiGLU 18944, vocabulary 152064, untied LM head
    l.hidden_size = 3584, l.intermediate_size = 18944, l.num_heads = 28, l.num_kv_heads = 4, l.vocab_size = 152064;
    l.num_layers = layers, l.tie_word_embeddings = false, l.max_position_embeddings = 32768, l.rope.theta = 1e6;
  } else {
    seq = 128, batch = 2;
  }
  mc.phantom_eta = 1e-4;
  PhantomModel model(mc);
  init_weights(*model);
  model->image_token_index = 5;
  model->train();
  model->to(dev);
  const auto ac = AutocastState::for_compute(cuda ? c10::kBFloat16 : c10::kFloat, dev);
  auto trainable = recipe::select_trainable(*model, {".*"});
  auto opt = recipe::make_adamw(trainable, recipe::OptimConfig{});
  auto qs = bench_questions(batch, seq / 2, seq / 2, 0, l.vocab_size);  // SFT on prompt + answer = seq tokens
  auto b = batch_to(chosen_sft_batch(qs), dev);
  const auto t = time_interleaved(*model, {&b}, {{recipe::LossKind::sft}}, *opt, trainable.params, ac, dev, warmup, steps)[0];
  auto body = mc;
  body.llm.vocab_size = 0;  // the decoder per token + the LM head per supervised row (as `phantom bench train`)
  const double flops = recipe::train_flops_per_token(body, b.input_ids.size(1)) * static_cast<double>(t.tokens) +
                       6.0 * static_cast<double>(l.hidden_size * l.vocab_size) * static_cast<double>(t.supervised);
  const double tflops = flops / (t.ms / 1e3) / 1e12;
  const auto [n_params, n_train] = count_parameters(*model);
  std::string detail = dev.str() + (cuda ? " bf16" : " fp32 (shrunk to width " + std::to_string(l.hidden_size) + ")") +
                       ", " + std::to_string(l.num_layers) + " layers, " + fmt_num("%.2fB params", n_params / 1e9) +
                       ", batch " + std::to_string(batch) + " x " + std::to_string(seq) + ": " +
                       fmt_num("%.1f ms/step", t.ms) + ", " + fmt_num("%.0f tokens/s", t.tokens / (t.ms / 1e3)) +
                       ", " + fmt_num("%.2f TFLOP/s", tflops) + ", peak memory " +
                       fmt_num("%.1f GiB", peak_memory_gb(dev));
  peak_tflops = recipe::peak_tflops_for(dev, peak_tflops);
  if (cuda && peak_tflops <= 0) detail += ", no MFU (device '" + recipe::device_name(dev) + "' not in the peak table: pass --peak-tflops)";
  if (cuda && peak_tflops > 0) {
    const double mfu = tflops / peak_tflops;
    detail += ", MFU " + fmt_num("%.1f%%", 100 * mfu) + " of " + fmt_num("%.0f", peak_tflops);
  }
  (void)n_train;
  r.check("step7b", std::isfinite(t.ms) && t.ms > 0, detail);
  if (!cuda) r.skip("step7b", "Qwen2-7B width (3584, SwiGLU 18944, vocabulary 152064), bf16, MFU");
}

bool wanted(const std::string& only, const std::string& step) {
  return only.empty() || ("," + only + ",").find("," + step + ",") != std::string::npos;
}

}  // namespace

int cmd_gpucheck(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"device", "layers", "seq", "batch", "steps", "warmup", "peak-tflops", "only", "threads"},
                      {"help"});
  if (a.has("help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  set_threads(threads_flag(a));
  const std::string device = a.get("device", "auto");
  if (device != "auto" && device != "cpu") throw UsageError("--device: auto | cpu");
  const bool cuda = device == "auto" && torch::cuda::is_available();
  const c10::Device dev = cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  const std::string only = a.get("only", "");
  const int64_t steps = int_flag(a, "steps", cuda ? 5 : 2, 1), warmup = int_flag(a, "warmup", cuda ? 2 : 1, 0);
  Report r;
  std::printf("%s", runtime_report().c_str());
  r.info("device", cuda ? "cuda:0, " + std::to_string(torch::cuda::device_count()) + " visible" : "cpu (dry run: no CUDA)");
  r.info("gate", "no fused gate kernel (deleted, never run): the Phantom gate is plain torch ops on every device");
  const auto t0 = std::chrono::steady_clock::now();
  if (wanted(only, "parity")) step_parity(r, cuda);
  if (wanted(only, "bf16")) {
    step_bf16(r, c10::Device(c10::kCPU));
    if (cuda) step_bf16(r, dev);
    else r.skip("bf16", "CUDA autocast bf16 vs fp32 (<= 2%)");
  }
  if (wanted(only, "nccl")) step_nccl(r, cuda);
  if (wanted(only, "po")) step_po(r, dev, warmup, steps);
  if (wanted(only, "step7b"))
    step_7b(r, dev, int_flag(a, "layers", 4, 1), int_flag(a, "seq", 2048, 1), int_flag(a, "batch", 4, 1),
            warmup, steps, number_flag(a, "peak-tflops", 0, 0));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[gpucheck] summary: %d ok, %d failed, %d skipped (no CUDA) in %.0f s\n", r.ok, r.failed, r.skipped, secs);
  return r.failed ? 1 : 0;
}

}  // namespace phantom::cli
