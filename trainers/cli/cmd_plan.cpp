// phantom plan: the memory of each stage of a recipe on one rank, before anything runs (trainers/recipe/memory_plan.h),
// and with --measure the same prediction against the peak of one real training step on this machine's CPU.
#include <cctype>
#include <cstdio>

#include "phantom/io/hf_config.h"
#include "phantom/model/runtime.h"
#include "phantom/util/parse.h"
#include "trainers/cli/commands.h"
#include "trainers/cli/flags.h"
#include "trainers/recipe/memory_measure.h"
#include "trainers/recipe/run_config.h"

namespace phantom::cli {

static const char* kPlanHelp =
    "usage: phantom plan --config FILE [--ranks N] [--device-memory 24GiB] [--stage NAME] [--model-dims DIR]\n"
    "                    [--measure] [key=value ...]\n"
    "  For each stage, the bytes one rank holds: weights by role and dtype, gradients, AdamW state (ZeRO-sharded\n"
    "  over N ranks), activations at data.max_length / data.max_tiles / data.batch_size with and without\n"
    "  checkpointing, the LM head's chunk and the gradient buckets; the total against the device, the largest\n"
    "  micro-batch that fits and, when none does, the single changes that make one fit.\n"
    "  --model-dims DIR: shapes from DIR/config.json instead of model.path (configs/dims/: no weights needed)\n"
    "  --measure: also run one training step of each stage on the CPU with the config's shapes (random weights;\n"
    "             reduce depth with model.llm.num_layers=2 ...) and print the caching allocator's peak against the\n"
    "             plan made for that CPU step (fp32 compute unless run.precision=bf16)\n";

namespace {

int64_t parse_bytes(const std::string& s) {
  double v = 0;
  std::string unit;
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  unit = s.substr(i);
  if (i == 0 || !util::parse_number(s.substr(0, i), v) || v <= 0)
    throw UsageError("--device-memory: '" + s + "' is not a size (e.g. 24GiB, 80GB, 48G)");
  double mult = 0;
  if (unit == "GiB" || unit == "G" || unit == "") mult = 1024.0 * 1024 * 1024;
  else if (unit == "GB") mult = 1e9;
  else if (unit == "MiB" || unit == "M") mult = 1024.0 * 1024;
  else throw UsageError("--device-memory: unit '" + unit + "' (GiB, GB, MiB)");
  return static_cast<int64_t>(v * mult);
}

// Copies the field `key` ("num_layers", "rope.theta") of a config struct from `src` to `dst` (same type), by the
// names its visit() gives: the command line's overrides, re-applied over dims read from a config.json.
struct FieldPointers {
  std::vector<void*> p;
  template <class T, class... R>
  void field(const std::string&, T& v, R&&...) { p.push_back(&v); }
  template <class S, class... R>
  void section(const std::string&, S& s, R&&...) { s.visit(*this); }
};
struct AssignField {
  const std::vector<void*>& src;
  std::string want, prefix;
  size_t i = 0;
  template <class T, class... R>
  void field(const std::string& name, T& v, R&&...) {
    if (prefix + name == want) v = *static_cast<const T*>(src[i]);
    ++i;
  }
  template <class S, class... R>
  void section(const std::string& name, S& s, R&&...) {
    const std::string outer = prefix;
    prefix += name + ".";
    s.visit(*this);
    prefix = outer;
  }
};
template <class C>
void copy_field(C& src, C& dst, const std::string& key) {
  FieldPointers fp;
  src.visit(fp);
  AssignField af{fp.p, key};
  dst.visit(af);
}

void print_plan(const recipe::PlanInputs& in, const recipe::MemoryPlan& m, int64_t device) {
  using recipe::gib;
  std::printf("  weights %s: frozen fp32 %s, frozen bf16 %s, frozen int8 %s; trainable fp32 %s (%.1f M); LoRA %s (%.1f M)\n",
              gib(m.weights()).c_str(), gib(m.frozen_fp32).c_str(), gib(m.frozen_half).c_str(),
              gib(m.frozen_int8).c_str(), gib(m.trainable_fp32).c_str(), static_cast<double>(m.n_trainable) / 1e6,
              gib(m.lora_fp32).c_str(), static_cast<double>(m.n_lora) / 1e6);
  std::printf("  gradients %s, AdamW %s (ZeRO-%d over %d ranks), autocast copies %s, buckets %s\n",
              gib(m.gradients).c_str(), gib(m.adamw).c_str(), in.zero_stage, in.ranks, gib(m.autocast_copies).c_str(),
              gib(m.buckets).c_str());
  std::printf("  activations (micro-batch %lld: %lld decoder tokens, %lld tiles): ViT %s [checkpointed %s, full %s], "
              "decoder %s [checkpointed %s, full %s]; then the larger of the head's chunk %s and one block's backward %s\n",
              static_cast<long long>(in.micro_batch), static_cast<long long>(m.decoder_tokens),
              static_cast<long long>(m.tiles), gib(m.vision_act).c_str(), gib(m.vision_act_ckpt).c_str(),
              gib(m.vision_act_full).c_str(), gib(m.decoder_act).c_str(), gib(m.decoder_act_ckpt).c_str(),
              gib(m.decoder_act_full).c_str(), gib(m.head_chunk).c_str(), gib(m.backward_block).c_str());
  std::printf("  total %s of %s: %s\n", gib(m.total()).c_str(), gib(device).c_str(),
              m.total() <= device ? "fits" : "does NOT fit");
}

void print_measured(const recipe::MeasuredStep& r) {
  const double ratio = static_cast<double>(r.plan.total()) / static_cast<double>(r.peak_bytes);
  std::printf("  measured (CPU step, %s, %lld x %lld tokens, %lld tiles, %.0f ms): peak %s; plan %s (activations %s); "
              "plan/measured %.3f\n",
              r.inputs.bf16 ? "bf16 autocast" : "fp32", static_cast<long long>(r.rows),
              static_cast<long long>(r.row_length), static_cast<long long>(r.tiles), r.ms,
              recipe::gib(r.peak_bytes).c_str(), recipe::gib(r.plan.total()).c_str(),
              recipe::gib(r.plan.activations()).c_str(), ratio);
  std::printf("    plan of the step: weights %s, gradients + AdamW + copies %s, ViT %s, decoder %s, head chunk %s | block backward %s\n",
              recipe::gib(r.plan.weights()).c_str(), recipe::gib(r.plan.state()).c_str(),
              recipe::gib(r.plan.vision_act).c_str(), recipe::gib(r.plan.decoder_act).c_str(),
              recipe::gib(r.plan.head_chunk).c_str(), recipe::gib(r.plan.backward_block).c_str());
  std::fflush(stdout);
}

}  // namespace

int cmd_plan(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"config", "ranks", "device-memory", "stage", "model-dims", "threads"},
                      {"help", "measure"});
  if (a.has("help")) {
    std::fputs(kPlanHelp, stdout);
    return 0;
  }
  const std::string path = a.require("config");
  recipe::RunConfig cfg = recipe::load_run_config(path, a.overrides);
  const int ranks = static_cast<int>(int_flag(a, "ranks", 1, 1));
  const int64_t device = parse_bytes(a.get("device-memory", "80GiB"));
  // Shapes: --model-dims, else model.path's config.json (+ model.vision_path's), else the YAML's own dims. The
  // YAML's own llm/vision keys given as overrides (model.llm.num_layers=2) apply on top of a read config.json.
  ModelConfig mc = cfg.model;
  const std::string dims = a.get("model-dims", cfg.model.path);
  if (!dims.empty()) {
    read_hf_config(dims, mc);
    if (!cfg.model.vision_path.empty()) read_vision_dir_config(cfg.model.vision_path, mc.vision);
    // model.llm.* / model.vision.* overrides (model.llm.num_layers=2) apply on top of the config.json read.
    for (const auto& o : a.overrides) {
      const std::string key = o.substr(0, o.find('='));
      if (key.rfind("model.llm.", 0) == 0) copy_field(cfg.model.llm, mc.llm, key.substr(10));
      if (key.rfind("model.vision.", 0) == 0) copy_field(cfg.model.vision, mc.vision, key.substr(13));
    }
  }
  std::printf("plan of %s: %d rank(s), device memory %s; LLM %s %lldx%lld (%lld layers, vocab %lld), ViT %lldx%lld "
              "(%lld blocks)\n",
              path.c_str(), ranks, recipe::gib(device).c_str(), mc.llm.family.c_str(),
              static_cast<long long>(mc.llm.hidden_size), static_cast<long long>(mc.llm.intermediate_size),
              static_cast<long long>(mc.llm.num_layers), static_cast<long long>(mc.llm.vocab_size),
              static_cast<long long>(mc.vision.hidden_size), static_cast<long long>(mc.vision.intermediate_size),
              static_cast<long long>(mc.vision.num_layers));
  if (a.has("measure")) set_threads(threads_flag(a));
  bool any = false;
  for (size_t s = 0; s < cfg.stages.size(); ++s) {
    if (a.has("stage") && cfg.stages[s].name != a.get("stage")) continue;
    any = true;
    auto in = recipe::plan_inputs(cfg, s, ranks);
    in.model = mc;
    const auto m = recipe::plan_memory(in);
    const int64_t global = static_cast<int64_t>(in.micro_batch) * ranks * cfg.optim.grad_accum;
    std::printf("stage %s (%s%s%s, %s, decoder checkpointing %s, ViT checkpointing %s):\n", cfg.stages[s].name.c_str(),
                recipe::loss_kind_name(cfg.stages[s].loss).c_str(), cfg.stages[s].lora.rank > 0 ? ", LoRA r" : "",
                cfg.stages[s].lora.rank > 0 ? std::to_string(cfg.stages[s].lora.rank).c_str() : "",
                in.bf16 ? "bf16" : "fp32", in.decoder_checkpointing ? "on" : "off", in.vision_checkpointing ? "on" : "off");
    print_plan(in, m, device);
    const int64_t best = recipe::largest_micro_batch(in, device);
    if (best > 0) {
      std::printf("  largest micro-batch that fits: %lld (config: %lld x %d ranks x grad_accum %lld = global %lld)\n",
                  static_cast<long long>(best), static_cast<long long>(in.micro_batch), ranks,
                  static_cast<long long>(cfg.optim.grad_accum), static_cast<long long>(global));
    } else {
      const auto changes = recipe::changes_that_fit(in, device);
      std::printf("  micro-batch 1 does not fit; %s\n", changes.empty() ? "no single change below makes it fit" : "what makes it fit:");
      for (auto& c : changes) std::printf("    %s\n", c.c_str());
    }
    std::fflush(stdout);
    if (a.has("measure")) print_measured(recipe::measure_step(cfg, mc, s));
  }
  if (!any) throw UsageError("--stage: no stage named '" + a.get("stage") + "' in " + path);
  return 0;
}

}  // namespace phantom::cli
