// The whole config of a `phantom train` run: model, data, optimiser defaults and the list of training stages.
// Every field documents itself; `phantom config --config F` prints the resolved result with those comments.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "phantom/model/model_config.h"
#include "phantom/util/config.h"
#include "phantom/util/dir_lock.h"
#include "trainers/distributed/config.h"
#include "trainers/recipe/loss_config.h"

namespace phantom::recipe {
using config::Check;

struct RunSection {
  std::string name = "run";        // run directory is <output_dir>/<name>
  std::string output_dir = "runs";
  int64_t seed = 1234;             // seeds init, dropout, shuffling: CPU runs are bitwise reproducible
  int64_t threads = 0;             // intra-op threads; 0 = all cores
  std::string device = "auto";     // auto | cpu | cuda
  std::string precision = "auto";  // auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
  std::string resume;              // "" | auto: as --resume auto when the command line names no --resume
  std::string frozen_dtype = "auto";  // storage of frozen matrices: auto (the compute dtype) | fp32 | bf16

  template <class V>
  void visit(V& v) {
    v.field("name", name, "run name: outputs go to <output_dir>/<name>");
    v.field("output_dir", output_dir, "parent directory of run directories");
    v.field("seed", seed, "global seed (init, dropout, shuffling)", Check::non_negative());
    v.field("threads", threads, "intra-op CPU threads; 0 = all cores", Check::non_negative());
    v.field("device", device, "auto | cpu | cuda", Check::one_of({"auto", "cpu", "cuda"}));
    v.field("precision", precision, "auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16",
            Check::one_of({"auto", "fp32", "bf16"}));
    v.field("resume", resume, "auto: resume from the latest checkpoint when there is one, else start (a requeue "
            "repeats one command); empty: as the command line says", Check::one_of({"", "auto"}));
    v.field("frozen_dtype", frozen_dtype,
            "storage of the frozen Linear weights and embeddings: auto (the compute dtype: bf16 on CUDA, fp32 on CPU) "
            "| fp32 | bf16; trainable tensors keep fp32 master weights",
            Check::one_of({"auto", "fp32", "bf16"}));
  }
};

// Optimiser and schedule. Top-level `optim` is the default of every stage; a stage's own `optim` overrides
// only the keys it names.
struct OptimConfig {
  double lr = 1e-5;             // peak learning rate (paper: 1e-5)
  double min_lr = 1e-6;         // cosine floor (paper: 1e-6)
  int64_t warmup_steps = 0;     // linear warmup (optimiser steps)
  double weight_decay = 0.0;    // AdamW decay on matrices only (no norms, biases, gates)
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double grad_clip = 1.0;       // max global grad norm; 0 disables
  int64_t grad_accum = 1;       // micro-batches per optimiser step

  template <class V>
  void visit(V& v) {
    v.field("lr", lr, "peak learning rate", Check::range(0, 1));
    v.field("min_lr", min_lr, "cosine schedule floor", Check::range(0, 1));
    v.field("warmup_steps", warmup_steps, "linear warmup, in optimiser steps", Check::non_negative());
    v.field("weight_decay", weight_decay, "AdamW decoupled decay (matrices only)", Check::range(0, 1));
    v.field("beta1", beta1, "AdamW beta1", Check::range(0, 1));
    v.field("beta2", beta2, "AdamW beta2", Check::range(0, 1));
    v.field("eps", eps, "AdamW epsilon", Check::positive());
    v.field("grad_clip", grad_clip, "max global gradient norm (0 = off)", Check::non_negative());
    v.field("grad_accum", grad_accum, "micro-batches per optimiser step", Check::positive());
  }
};

// Per-stage overrides of OptimConfig: unset keys inherit the top-level value.
struct OptimOverrides {
  std::optional<double> lr, min_lr, weight_decay, grad_clip;
  std::optional<int64_t> warmup_steps, grad_accum;

  template <class V>
  void visit(V& v) {
    v.field("lr", lr, "peak learning rate", Check::range(0, 1));
    v.field("min_lr", min_lr, "cosine schedule floor", Check::range(0, 1));
    v.field("warmup_steps", warmup_steps, "linear warmup steps", Check::non_negative());
    v.field("weight_decay", weight_decay, "AdamW decay", Check::range(0, 1));
    v.field("grad_clip", grad_clip, "max gradient norm", Check::non_negative());
    v.field("grad_accum", grad_accum, "micro-batches per optimiser step", Check::positive());
  }
  OptimConfig resolve(OptimConfig base) const {
    if (lr) base.lr = *lr;
    if (min_lr) base.min_lr = *min_lr;
    if (weight_decay) base.weight_decay = *weight_decay;
    if (grad_clip) base.grad_clip = *grad_clip;
    if (warmup_steps) base.warmup_steps = *warmup_steps;
    if (grad_accum) base.grad_accum = *grad_accum;
    return base;
  }
};

// LoRA adapters of a stage (phantom/model/lora.h): attached at stage start, merged into the base weights at stage end.
struct LoraConfig {
  int64_t rank = 0;                  // 0 = no LoRA
  double alpha = 16;                 // scaling alpha/rank
  double dropout = 0.0;
  std::vector<std::string> targets;  // regex patterns of Linear module names
  bool base_int8 = false;            // frozen base weights of the adapted Linears stored as int8

  template <class V>
  void visit(V& v) {
    v.field("rank", rank, "LoRA rank (0 disables; paper: 256)", Check::non_negative());
    v.field("alpha", alpha, "LoRA alpha: adapter output scaled by alpha/rank (paper: 256)", Check::positive());
    v.field("dropout", dropout, "dropout on the LoRA input (not with activation_checkpointing)", Check::range(0, 1));
    v.field("targets", targets, "regexes (search) of Linear module names that get adapters");
    v.field("base_int8", base_int8, "store the adapted Linears' frozen weights as int8 (per-row scales)");
  }
};

struct PreferenceConfig {
  double beta = kDefaultBeta;    // PO / SimPO / DPO / IPO beta (paper: 2)
  double gamma = kDefaultGamma;  // PO / SimPO margin (paper: 0.5)
  double sft_weight = 1.0;
  double orpo_lambda = kDefaultOrpoLambda;  // ORPO's lambda (Hong et al. 2024: 0.1)
  std::string ref_cache_dir;  // DPO/IPO reference log-prob caches; empty = <run>/ref_logps

  template <class V>
  void visit(V& v) {
    v.field("beta", beta, "preference temperature beta (paper: 2)", Check::positive());
    v.field("gamma", gamma, "reward margin gamma (paper: 0.5)", Check::non_negative());
    v.field("sft_weight", sft_weight, "weight of the chosen-answer cross-entropy", Check::non_negative());
    v.field("orpo_lambda", orpo_lambda, "orpo: weight of the odds-ratio term (ORPO paper: 0.1)", Check::non_negative());
    v.field("ref_cache_dir", ref_cache_dir, "dpo/ipo: directory of the reference log-prob caches (empty: <run>/ref_logps)");
  }
  // The loss of a stage of this kind: the one place a LossConfig is built from the config.
  LossConfig loss(LossKind kind) const { return LossConfig{kind, beta, gamma, sft_weight, orpo_lambda}; }
};

struct StageConfig {
  std::string name = "stage";
  LossKind loss = LossKind::sft;         // sft | po | simpo | dpo | ipo | orpo (parsed from its name)
  std::vector<std::string> trainable;    // regexes of parameter names trained in this stage
  std::string init_from;                 // HF checkpoint to start from; empty = previous stage's result
  std::string data;                      // annotations for this stage; empty = data.train
  std::string format;                    // format of this stage's data; empty = data.format
  std::string val;                       // held-out file of this stage, in its format; empty = data.val
  std::string reference;                 // DPO/IPO reference checkpoint; empty = this stage's starting weights
  double epochs = 1;                     // passes over the data (fractions allowed)
  int64_t max_steps = 0;                 // optimiser steps; > 0 overrides epochs
  OptimOverrides optim;
  LoraConfig lora;
  bool base_int8 = false;                // every frozen Linear weight (not lm_head) stored as int8

  template <class V>
  void visit(V& v) {
    v.field("name", name, "stage name (checkpoint subdirectory)");
    v.field("loss", loss, "sft | po | simpo | dpo | ipo | orpo");  // checked against the names (loss_config.cpp)
    v.field("trainable", trainable, "regexes of trainable parameter names (others frozen)");
    v.field("init_from", init_from, "HF checkpoint to start from (empty: previous stage)");
    v.field("data", data, "annotation file for this stage (empty: data.train)");
    v.field("format", format, "format of this stage's data: conversations | preference | internvl_meta (empty: data.format)",
            Check::one_of({"", "conversations", "preference", "internvl_meta"}));
    v.field("val", val,
            "held-out file validating this stage, read in this stage's format (empty: data.val, read in data.format)");
    v.field("reference", reference, "dpo/ipo: HF checkpoint of the reference model (empty: the stage's starting weights)");
    v.field("epochs", epochs, "passes over the data", Check::positive());
    v.field("max_steps", max_steps, "optimiser steps (> 0 overrides epochs)", Check::non_negative());
    v.section("optim", optim, "overrides of the top-level optim for this stage");
    v.section("lora", lora, "LoRA adapters for this stage");
    v.field("base_int8", base_int8,
            "store every frozen Linear weight of the stage (not lm_head) as int8 with per-row scales, with or "
            "without LoRA (paper: 8-bit frozen bases)");
  }
};

struct CheckpointConfig {
  int64_t every_steps = 0;     // 0 = only at stage end
  double every_minutes = 0;    // also after the first step that ends N minutes after the last checkpoint; 0 = off
  int64_t keep_last = 2;
  template <class V>
  void visit(V& v) {
    v.field("every_steps", every_steps, "save every N optimiser steps (0: stage end only)", Check::non_negative());
    v.field("every_minutes", every_minutes, "also save when N minutes passed since the last checkpoint (0: off)",
            Check::non_negative());
    v.field("keep_last", keep_last, "keep the newest K step checkpoints", Check::positive());
  }
};

struct LogConfig {
  int64_t every_steps = 1;
  bool tensorboard = true;
  double peak_tflops = 0;  // accelerator peak for MFU; 0 = the device's bf16 dense peak by name (flops.h), none on CPU
  template <class V>
  void visit(V& v) {
    v.field("every_steps", every_steps, "console/JSONL line every N steps", Check::positive());
    v.field("tensorboard", tensorboard, "write TensorBoard event files");
    v.field("peak_tflops", peak_tflops,
            "peak TFLOP/s per device for MFU (0: the bf16 dense peak of the CUDA device by name: H100, H200, A100, "
            "A6000, RTX 3090; none on CPU or an unknown device)", Check::non_negative());
  }
};

struct ValidationConfig {
  int64_t every_steps = 0;      // 0 = at the end of each stage only
  int64_t max_batches = 0;      // 0 = the whole held-out split
  std::string benchmark;        // benchmark file evaluated after the last stage (empty: none)
  std::string benchmark_kind = "mmbench";  // its format and scorer, as `phantom eval --bench` names them
  int64_t benchmark_limit = 0;  // questions (0 = all)
  int64_t num_beams = 3;        // paper protocol: beam search, 3 beams
  bool open_questions = false;  // also ask the benchmark's questions without options, scored by the named option
  template <class V>
  void visit(V& v) {
    v.field("every_steps", every_steps, "validate every N steps (0: stage end only)", Check::non_negative());
    v.field("max_batches", max_batches, "validation batches (0: all of data.val)", Check::non_negative());
    v.field("benchmark", benchmark, "benchmark file evaluated after training (empty: none)");
    v.field("benchmark_kind", benchmark_kind, "the benchmark's format and scorer (phantom eval --bench names: mmbench, mmstar, ...)");
    v.field("benchmark_limit", benchmark_limit, "benchmark questions to use (0: all)", Check::non_negative());
    v.field("num_beams", num_beams, "beams for benchmark generation (paper: 3)", Check::positive());
    v.field("open_questions", open_questions, "also score the questions asked without options (open answers)");
  }
};

struct RunConfig {
  RunSection run;
  ModelConfig model;
  data::DataConfig data;
  OptimConfig optim;
  PreferenceConfig preference;
  std::vector<StageConfig> stages;
  bool activation_checkpointing = false;
  bool vision_checkpointing = false;
  bool shared_prefix = true;         // PO: one packed row per question (prompt computed once)
  std::string nonfinite = "skip";    // non-finite loss: skip the step | stop
  CheckpointConfig checkpoint;
  LogConfig log;
  ValidationConfig validation;
  ::phantom::distributed::DistributedConfig distributed;

  template <class V>
  void visit(V& v) {
    v.section("run", run, "run identity, seed, device");
    v.section("model", model, "model architecture or checkpoint");
    v.section("data", data, "datasets, tokenizer, tiling, loader");
    v.section("optim", optim, "optimiser and schedule (default of every stage)");
    v.section("preference", preference, "PO / DPO-family loss settings");
    v.list("stages", stages, "training stages, run in order");
    v.field("activation_checkpointing", activation_checkpointing, "recompute decoder layers in backward");
    v.field("vision_checkpointing", vision_checkpointing,
            "recompute ViT blocks in backward (blocks that train or sit above a trainable tensor)");
    v.field("shared_prefix", shared_prefix, "preference losses: compute image + question once for all answers");
    v.field("nonfinite", nonfinite, "non-finite loss: skip the step | stop", Check::one_of({"skip", "stop"}));
    v.section("checkpoint", checkpoint, "checkpointing");
    v.section("log", log, "metrics output");
    v.section("validation", validation, "held-out loss and benchmark");
    v.section("distributed", distributed, "data parallel training under torchrun (ignored in a single process)");
  }
};

// Loads `path` (with its `base:` chain) and the command-line overrides, then checks cross-key constraints.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);

// The resolved config as self-documenting YAML (each key with its comment).
std::string resolved_yaml(RunConfig& c, const std::string& path, const std::vector<std::string>& overrides);

// Creates <run.output_dir>/<run.name>, locks it for this process (`lock`: held until it is destroyed; a second
// trainer on the same directory fails naming the first one's PID) and saves the resolved config there
// (atomically). Returns the directory.
std::string prepare_run_dir(RunConfig& c, const std::string& resolved, std::unique_ptr<util::DirLock>& lock);

}  // namespace phantom::recipe
