// The training recipe, top to bottom (docs/training.md):
//
//   run_recipe
//     setup            threads, seed, process group, device, precision, signals
//     load_model       tokenizer, model (fresh or from model.path), chat template, tiling
//     resume           the checkpoint's model, RNG and position (--resume)
//     for each stage   run_stage:
//       init_from        weights of another model, when the stage names one
//       trainable set    LoRA adapters, freezing by name patterns, frozen weights as bf16 / int8
//       optimiser        AdamW (+ data parallel sums, ZeRO)
//       data             samples -> batches (loader with its saved position)
//       reference        DPO/IPO reference log-probs (cached on disk)
//       loop             train_step, metrics line, validation, checkpoints, stops
//       finish_stage     validate, merge LoRA + fp32 weights again, export, checkpoint
//     benchmark        the held-out benchmark through generation, as `phantom eval` runs it
//
// Each step is a function below, in that order. What they share lives in `Run` (set up once) and `Stage` (one
// stage's moving parts).
#include "trainers/recipe/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "data/collate.h"
#include "data/images/image.h"
#include "data/loader.h"
#include "data/tokenizers/tokenizer.h"
#include "phantom/io/checkpoint.h"
#include "phantom/model/cpu_allocator.h"
#include "phantom/model/runtime.h"
#include "phantom/util/log.h"
#include "phantom/util/stop.h"
#include "trainers/distributed/world.h"
#include "trainers/eval/run.h"
#include "trainers/recipe/batches.h"
#include "trainers/recipe/export_tokenizer.h"
#include "trainers/recipe/flops.h"
#include "trainers/recipe/lora_stage.h"
#include "trainers/recipe/losses.h"
#include "trainers/recipe/metrics.h"
#include "trainers/recipe/model_setup.h"
#include "trainers/recipe/optim.h"
#include "trainers/recipe/ref_logps.h"
#include "trainers/recipe/run_start.h"
#include "trainers/recipe/stage_weights.h"
#include "trainers/recipe/start_point.h"
#include "trainers/recipe/train_state.h"

namespace phantom::recipe {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Each stage shuffles with its own seed, run.seed + stage * this prime: stages see different orders, a rerun the
// same ones, and nearby run seeds do not give one run's stage 1 the order of another's stage 0 (a stride of 1 would).
constexpr uint64_t kStageSeedStride = 7919;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

data::Batch to_device(data::Batch b, const c10::Device& d) {
  for (at::Tensor* t : {&b.input_ids, &b.attention_mask, &b.positions, &b.pixel_values})
    if (t->defined()) *t = t->to(d);
  return b;
}

// Everything the stages share, set up once.
struct Run {
  RunConfig& cfg;
  std::string dir, resolved_yaml;
  distributed::World* world = nullptr;  // nullptr in a single process
  int rank = 0, nranks = 1;
  bool writer = true;      // only rank 0 writes metrics, TensorBoard, checkpoints and exports
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = c10::kFloat;
  AutocastState autocast;  // fp32 master weights, bf16 compute when asked
  std::unique_ptr<data::Tokenizer> tok;
  PhantomModel model{nullptr};
  std::unique_ptr<data::SampleEncoder> enc;
  data::TileOptions tiles;
  int32_t pad_id = 0;
  int64_t n_params = 0;
  MetricSink sink;
  std::string run_id;                 // recorded in every checkpoint (a fresh run's own, or the resumed one's)
  int64_t base_global_batch = 0;      // global micro-batch of the run's first launch (keep_step_batch)
  Clock::time_point last_checkpoint;  // for checkpoint.every_minutes
  std::map<std::string, data::SampleSet> datasets;  // indexed once per format and path
  std::mutex skip_mu;
  data::SkipCounts skipped;
  RecipeResult result;
  std::vector<eval::BenchItem> benchmark_items;  // validation.benchmark, read when the run starts
  StepWatcher watch;                             // tests only (trainer.h)

  // Samples of a file in a format (a stage may read its own: a warm-up on conversations, then triples); errors
  // name `who` (the stage and the key that chose the format).
  const data::SampleSet& samples_of(const std::string& path, const std::string& format, const std::string& who) {
    const std::string key = format + ":" + path;
    auto it = datasets.find(key);
    if (it != datasets.end()) return it->second;
    data::DataConfig dc = cfg.data;
    dc.format = format;
    // A file up to data.upfront_check_mb has every row checked now; a larger one is indexed and its rows are
    // checked as they are read (data/sample_set.h).
    const auto t0 = Clock::now();
    data::SampleSet s;
    try {
      s = data::SampleSet::index(path, dc, skipped, static_cast<uint64_t>(cfg.run.seed),
                                 static_cast<uint64_t>(cfg.data.upfront_check_mb) << 20);
    } catch (const std::exception& e) {
      throw std::runtime_error(who + ": " + path + " read as format '" + format + "': " + e.what());
    }
    if (s.empty()) throw std::runtime_error(who + ": no usable samples in " + path + " (" + skipped.summary() + ")");
    if (s.checked())
      log::info("data: {} samples from {} ({}){}", s.size(), path, format, skipped.total() ? " (" + skipped.summary() + ")" : "");
    else
      log::info("data: {} rows indexed in {:.1f} s from {} ({}, over data.upfront_check_mb {} MiB: each row is "
                "checked when it is read)", s.size(), seconds_since(t0), path, format, cfg.data.upfront_check_mb);
    return datasets.emplace(key, std::move(s)).first->second;
  }
  BatchMaker batch_maker(const data::SampleSet& samples, bool preference) {
    BatchMaker m{cfg, samples, *enc, tiles, pad_id, preference, cfg.shared_prefix, &skip_mu, &skipped};
    m.context = model->cfg.llm.max_position_embeddings;
    return m;
  }
};

// One stage's moving parts.
struct Stage {
  int64_t index = 0;
  const StageConfig& cfg;
  OptimConfig optim;
  LossConfig loss;
  std::string train_path;
  std::string format, who;    // the data format of train_path, and "stage X (the key that set it)" for errors
  Trainable trainable;
  std::unique_ptr<StageOptimizer> opt;
  std::unique_ptr<data::Loader<data::Batch>> loader;
  int64_t global_batch = 0;   // samples per micro-batch over all ranks (the loader's unit of position)
  int64_t total = 0;          // optimiser steps of the stage
  int64_t step = 0;           // optimiser steps done (skipped ones included)
  int64_t applied = 0;        // steps of this invocation whose update was applied (not skipped)
  at::Tensor ref_table;       // DPO/IPO reference log-probs
  at::Tensor val_ref_table;   // DPO/IPO reference log-probs of the held-out file (data.val), for validation
  std::string ref_identity;
  bool resuming = false;      // continues a mid-stage checkpoint
};

// ---- setup ------------------------------------------------------------------------------------------------------

void setup(Run& r) {
  set_threads(r.cfg.run.threads);
  seed_everything(static_cast<uint64_t>(r.cfg.run.seed));
  r.world = distributed::World::init(r.cfg.distributed, r.cfg.run.device);
  r.rank = r.world ? r.world->rank() : 0, r.nranks = r.world ? r.world->size() : 1;
  r.writer = r.rank == 0;
  r.device = r.world ? r.world->device() : pick_device(r.cfg.run.device);
  // data.batch_size is per rank (torchtune / HF convention): one optimiser step sees batch x ranks x grad_accum.
  r.dtype = pick_compute_dtype(r.cfg.run.precision, r.device);
  r.autocast = AutocastState::for_compute(r.dtype, r.device);
  if (r.writer) r.sink = MetricSink(r.dir, r.cfg.log.tensorboard);
  r.last_checkpoint = Clock::now();
}

// ---- tokenizer and model ----------------------------------------------------------------------------------------

void load_model(Run& r) {
  auto& cfg = r.cfg;
  data::check_paths(cfg.data);
  if (cfg.data.tokenizer.empty()) throw config::ConfigError("config error: data.tokenizer: required for training");
  // The one builder `eval` and `generate` use too; the prompt settings go into the model's config and every export.
  ModelSpec spec;
  spec.model = cfg.model;
  spec.tokenizer = cfg.data.tokenizer;
  PromptConfig prompt;
  prompt.chat_template = cfg.data.chat_template;
  prompt.max_tiles = cfg.data.max_tiles;
  prompt.use_thumbnail = cfg.data.use_thumbnail;
  prompt.image_placement = cfg.data.image_placement;
  prompt.multi_image = cfg.data.multi_image;
  prompt.source = "the data section";
  spec.prompt = prompt;
  spec.answer_tokenization = cfg.data.answer_tokenization;
  spec.added_tokens_dir = r.dir;
  spec.device = r.device;
  auto m = build_model(spec);
  r.tok = std::move(m.tok);
  r.model = m.model;
  r.enc = std::move(m.enc);
  r.tiles = m.tiles;
  r.pad_id = m.pad_id;
  cfg.data.tokenizer = m.tokenizer_path;  // the copy with the image tokens, when they were added
  auto& model = r.model;
  model->language_model->activation_checkpointing = cfg.activation_checkpointing;
  model->vision_model->activation_checkpointing = cfg.vision_checkpointing;
  int64_t n_train = 0;
  std::tie(r.n_params, n_train) = count_parameters(*model);
  log::info("model: {} parameters ({} family, Phantom {}), {} visual tokens per tile, device {}, compute {}{}",
            r.n_params, model->cfg.llm.family, model->cfg.phantom, model->tokens_per_tile(), r.device.str(),
            c10::toString(r.dtype), r.autocast.enabled() ? " (autocast, fp32 master weights)" : "");
}

// ---- resume -----------------------------------------------------------------------------------------------------

// The state to continue from ("" = a fresh run): the checkpoint's model and RNG are loaded here; its optimiser and
// data position when its stage starts. A finished stage continues at the next one.
std::string export_stage(Run& r, const std::string& stage_name);

// Whether <run>/<stage name> holds a whole export: config.json is written after the weights, the tokenizer last.
bool export_complete(const Run& r, const std::string& stage_name) {
  const fs::path dir = fs::path(r.dir) / stage_name, tok = r.cfg.data.tokenizer;
  return fs::exists(dir / "config.json") &&
         (fs::is_directory(tok) ? fs::exists(dir / "tokenizer_config.json") || fs::exists(dir / "tokenizer.model") ||
                                      fs::exists(dir / "tokenizer.json")
                                : fs::exists(dir / tok.filename()));
}

TrainState resume(Run& r, const std::string& resume_arg, std::string& ckpt) {
  TrainState st;
  if (!resume_arg.empty()) {
    if (resume_arg == "latest") {
      auto latest = latest_checkpoint(r.dir);
      if (!latest) throw std::runtime_error("--resume: no checkpoint in " + r.dir + "/checkpoints");
      ckpt = *latest;
    } else {
      ckpt = resume_arg;
    }
    st = read_train_state(ckpt);
    // The checkpoint's stage must be one of this config's (or, finished, its last): a config with fewer stages
    // than the run that wrote it would otherwise report "training done" with nothing trained.
    const auto n_stages = static_cast<int64_t>(r.cfg.stages.size());
    if (st.stage >= n_stages)
      throw std::runtime_error(ckpt + "/state.json: stage " + std::to_string(st.stage) + (st.stage_done ? " (done)" : "") +
                               " is beyond this config's " + std::to_string(n_stages) + " stage(s) (0.." +
                               std::to_string(n_stages - 1) + "): the checkpoint belongs to another config");
    if (st.stage_total > 0 && st.stage_step > st.stage_total)
      throw std::runtime_error(ckpt + "/state.json: stage_step " + std::to_string(st.stage_step) + " is beyond stage_total " +
                               std::to_string(st.stage_total));
    // A mid-stage checkpoint holds its stage's adapters and frozen storage (int8 / bf16): give the model the same
    // tensors first.
    if (!st.stage_done && st.stage_step > 0 && st.stage < static_cast<int64_t>(r.cfg.stages.size()))
      prepare_stage_weights(*r.model, r.cfg.stages[static_cast<size_t>(st.stage)],
                            frozen_storage_dtype(r.cfg.run.frozen_dtype, r.dtype));
    load_checkpoint_model(ckpt, *r.model);
    log::info("resuming from {} (stage {}, step {}/{})", ckpt, st.stage, st.stage_step, st.stage_total);
    // The stage-end checkpoint is written before the export: an export that did not finish is written again.
    if (st.stage_done) {
      const std::string& name = r.cfg.stages[static_cast<size_t>(st.stage)].name;
      if (!export_complete(r, name)) {
        log::warn("stage {}: its export in {}/{} is missing or incomplete; writing it from {}", name, r.dir, name, ckpt);
        export_stage(r, name);
      } else {
        r.result.final_model = (fs::path(r.dir) / name).string();
      }
    }
    if (st.stage_done) ++st.stage, st.stage_step = 0, st.data = {}, st.stage_done = false;
  }
  distributed::broadcast_module(r.world, *r.model);  // data parallel: every rank starts from rank 0's weights
  return st;
}

// ---- a stage: trainable set, optimiser, data, reference -----------------------------------------------------------

void init_from(Run& r, const Stage& s) {
  if (s.cfg.init_from.empty() || s.resuming) return;
  LoadReport rep;
  auto other = load_phantom(s.cfg.init_from, r.model->cfg, &rep);
  load_state_dict(*r.model, module_state_dict(*other), false);
  r.model->to(r.device);
  log::info("stage {}: weights from {}", s.cfg.name, s.cfg.init_from);
}

void select_trainable(Run& r, Stage& s) {
  if (!s.resuming) attach_stage_lora(*r.model, s.cfg);                     // lora.rank > 0: adapters, merged at the end
  if (!s.resuming && s.cfg.lora.rank > 0) distributed::broadcast_module(r.world, *r.model);  // rank 0's fresh adapters everywhere
  // The trainable set in fp32; the frozen rest stored as run.frozen_dtype / stage.base_int8 ask.
  s.trainable = prepare_stage_weights(*r.model, s.cfg, frozen_storage_dtype(r.cfg.run.frozen_dtype, r.dtype),
                                      /*attach_adapters=*/false);
  log::info("stage {} ({}): {} trainable parameters of {} ({:.2f}%) in {} tensors", s.cfg.name, loss_kind_name(s.cfg.loss),
            s.trainable.count, r.n_params,
            100.0 * static_cast<double>(s.trainable.count) / static_cast<double>(r.n_params), s.trainable.names.size());
}

void make_optimizer(Run& r, Stage& s, const std::string& ckpt) {
  s.opt = std::make_unique<StageOptimizer>(r.world, s.trainable, s.optim, r.cfg.distributed);
  if (s.resuming) s.opt->load(ckpt);
  log::info("stage {}: {}", s.cfg.name, s.opt->memory_report());
}

// Every stage's optimiser step holds base_global_batch x its grad_accum samples, base_global_batch being the
// global micro-batch of the run's first launch. A run resumed on another number of ranks (same data.batch_size
// per rank) keeps that by recomputing grad_accum when the new micro-batch divides it; anything else would change
// the training (or replay and skip samples), so it is refused with the numbers.
void keep_step_batch(Run& r, Stage& s, const TrainState& st) {
  const int64_t target = r.base_global_batch * s.optim.grad_accum, micro = s.global_batch;
  const int64_t done = s.resuming ? st.data.batch * st.global_batch : 0;  // samples of the epoch already read
  if (s.resuming && st.global_batch && st.grad_accum && st.global_batch * st.grad_accum != target)
    throw config::ConfigError(fmt::format(
        "config error: the checkpoint's optimiser steps hold {} samples (global micro-batch {} x grad_accum {}); this "
        "config asks {} ({} x grad_accum {}): resume with the checkpoint's data.batch_size and grad_accum (its "
        "config.yaml has them) or start a new run.name", st.global_batch * st.grad_accum, st.global_batch, st.grad_accum,
        target, r.base_global_batch, s.optim.grad_accum));
  if (target == micro * s.optim.grad_accum && done % micro == 0) return;
  if (target % micro != 0 || done % micro != 0)
    throw config::ConfigError(fmt::format(
        "config error: stage {}: the run's optimiser steps hold {} samples (global micro-batch {} when it started x "
        "grad_accum {}); this launch's micro-batch of {} (data.batch_size {} per rank x {} rank{}) does not divide {}{}: "
        "use a data.batch_size and number of ranks whose product divides {}, or start a new run.name",
        s.cfg.name, target, r.base_global_batch, s.optim.grad_accum, micro, r.cfg.data.batch_size, r.nranks,
        r.nranks == 1 ? "" : "s", target, done % micro ? fmt::format(" (nor the {} samples of this epoch already read)", done) : "",
        target));
  const int64_t accum = target / micro;
  log::info("stage {}: grad_accum {} instead of {}: the run's {} samples per optimiser step = {} per micro-batch "
            "({} per rank x {} rank{}) x {}", s.cfg.name, accum, s.optim.grad_accum, target, micro,
            r.cfg.data.batch_size, r.nranks, r.nranks == 1 ? "" : "s", accum);
  s.optim.grad_accum = accum;
}

void make_loader(Run& r, Stage& s, const TrainState& st) {
  const auto& cfg = r.cfg;
  const auto& train = r.samples_of(s.train_path, s.format, s.who);
  data::LoaderOptions lo;
  lo.global_batch = cfg.data.batch_size * r.nranks;  // data.batch_size is per rank
  lo.rank = r.rank, lo.world = r.nranks;  // each rank reads its batch_size share of the same global batches
  lo.seed = static_cast<uint64_t>(cfg.run.seed) + static_cast<uint64_t>(s.index) * kStageSeedStride;
  lo.shuffle = cfg.data.shuffle;
  lo.group_by_length = cfg.data.group_by_length;
  lo.prefetch = std::max<int64_t>(1, cfg.data.prefetch);
  s.global_batch = lo.global_batch;
  keep_step_batch(r, s, st);
  // Length grouping in blocks of one optimiser step's samples: the order is then the same for any split of that
  // step into ranks x micro-batches (a resume on another number of ranks continues the same sample order).
  lo.group_unit = s.global_batch * s.optim.grad_accum;
  log::info("stage {}: batch {} per rank x {} rank{} x grad_accum {} = {} questions per optimiser step", s.cfg.name,
            cfg.data.batch_size, r.nranks, r.nranks == 1 ? "" : "s", s.optim.grad_accum, s.global_batch * s.optim.grad_accum);
  s.loader = std::make_unique<data::Loader<data::Batch>>(estimated_lengths(train, r.model->tokens_per_tile()), lo,
                                                         r.batch_maker(train, needs_preference_data(s.cfg.loss)));
  const int64_t per_epoch = std::max<int64_t>(1, s.loader->batches_per_epoch() / s.optim.grad_accum);
  s.total = s.cfg.max_steps > 0
                ? s.cfg.max_steps
                : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(s.cfg.epochs * static_cast<double>(per_epoch))));
  if (!s.resuming) return;
  // The position counts global micro-batches of the checkpoint's size: the same number of samples in this run's.
  data::LoaderPosition pos = st.data;
  if (st.global_batch && st.global_batch != s.global_batch) pos.batch = st.data.batch * st.global_batch / s.global_batch;
  s.step = st.stage_step, s.loader->restore(pos);
}

// A stage's held-out samples: stages.N.val in the stage's format (a conversations warm-up validated on
// conversations), else data.val in data.format; empty when there is neither.
const data::SampleSet& validation_samples(Run& r, const StageConfig& st) {
  static const data::SampleSet none;
  const auto& cfg = r.cfg;
  if (!st.val.empty())
    return r.samples_of(st.val, st.format.empty() ? cfg.data.format : st.format,
                        "validation of stage " + st.name + " (stages.N.val, in the stage's format)");
  if (cfg.data.val.empty()) return none;
  return r.samples_of(cfg.data.val, cfg.data.format, "validation (data.val, data.format)");
}

// The reference log-probs of every sample of `path` under the stage's reference, from the on-disk cache
// <cache_dir>/<cache_name>.safetensors or one pass.
RefResult reference_table(Run& r, const Stage& s, const TrainState& st, const std::string& ckpt,
                          const std::string& path, const data::SampleSet& samples,
                          const std::string& cache_name) {
  const auto& cfg = r.cfg;
  RefSetup rs;
  const fs::path cache_dir = cfg.preference.ref_cache_dir.empty() ? fs::path(r.dir) / "ref_logps"
                                                                   : fs::path(cfg.preference.ref_cache_dir);
  rs.cache_path = (cache_dir / (cache_name + ".safetensors")).string();
  rs.stage = s.cfg.name;
  rs.reference = s.cfg.reference;
  if (s.resuming) rs.resumed_identity = st.ref_identity;
  if (s.resuming && rs.resumed_identity.empty())
    throw std::runtime_error("stage " + s.cfg.name + ": the checkpoint " + ckpt + " records no reference model");
  rs.data_key = ref_data_key(path, samples, cfg.data.tokenizer, *r.enc, r.tiles, cfg.data.max_length, r.dtype, &rs.max_answers);
  rs.num_samples = static_cast<int64_t>(samples.size());
  rs.batch = cfg.data.batch_size;
  BatchMaker maker = r.batch_maker(samples, true);
  maker.empty_ok = true;
  rs.make = maker;
  rs.device = r.device;
  rs.autocast = r.autocast;
  return recipe::reference_logps(*r.model, rs);
}

// DPO / IPO: the reference log-probs of every training sample, and of the held-out file's when it holds triples
// (validation scores the stage's own loss), each from its on-disk cache or one pass before training.
void reference_logps(Run& r, Stage& s, const TrainState& st, const std::string& ckpt) {
  if (!needs_reference(s.cfg.loss)) return;
  auto ref = reference_table(r, s, st, ckpt, s.train_path, r.samples_of(s.train_path, s.format, s.who), s.cfg.name);
  s.ref_table = ref.table, s.ref_identity = ref.identity;
  r.result.ref_passes += ref.computed ? 1 : 0;
  const auto& val = validation_samples(r, s.cfg);
  if (!val.empty() && val.preference())
    s.val_ref_table = reference_table(r, s, st, ckpt, s.cfg.val.empty() ? r.cfg.data.val : s.cfg.val, val,
                                      s.cfg.name + ".val").table;
}

// ---- the loop -----------------------------------------------------------------------------------------------------

// A checkpoint of the stage as it stands: `s.step` optimiser steps done, the loader at its current position.
void checkpoint(Run& r, Stage& s, bool stage_done) {
  TrainState now{s.index, s.step, r.result.global_step, s.total, stage_done, s.loader->position()};
  now.global_batch = s.global_batch, now.grad_accum = s.optim.grad_accum;
  now.ref_identity = s.ref_identity;
  now.run_id = r.run_id;
  now.base_global_batch = r.base_global_batch;
  auto* state = s.opt->checkpoint_state();  // the full AdamW state (gathered on rank 0 under ZeRO)
  if (r.writer) save_checkpoint(r.dir, *r.model, state, now, r.resolved_yaml, r.cfg.checkpoint.keep_last);
  r.last_checkpoint = Clock::now();
}

// The stage's held-out file (validation_samples) scored with the stage's own loss, as "val/loss", beside the metrics of its sums
// (cross-entropy, preference term, rewards, log-probs), summed over ranks, as "val/<metric>". Conversations are
// scored with sft whatever the stage's loss (a preference loss needs triples).
Metrics validate(Run& r, const Stage& s) {
  const auto& cfg = r.cfg;
  const auto& val = validation_samples(r, s.cfg);
  if (val.empty()) return {};
  const bool preference = val.preference();
  const BatchMaker maker = r.batch_maker(val, preference);
  const LossConfig lc = cfg.preference.loss(preference ? s.loss.kind : LossKind::sft);
  torch::NoGradGuard ng;
  r.model->eval();
  Metrics sums;
  const int64_t n = static_cast<int64_t>(val.size()), B = cfg.data.batch_size * r.nranks;
  int64_t batches = 0;
  for (int64_t b0 = 0; b0 < n; b0 += B) {
    if (cfg.validation.max_batches > 0 && batches >= cfg.validation.max_batches) break;
    ++batches;
    const auto [first, last] = distributed::rank_share(b0, std::min(n, b0 + B), r.rank, r.nranks);  // this rank's part
    if (first == last) continue;
    std::vector<size_t> idx;
    for (int64_t i = first; i < last; ++i) idx.push_back(static_cast<size_t>(i));
    auto b = to_device(maker(idx), r.device);
    AutocastScope amp(r.autocast);
    const at::Tensor ref = s.val_ref_table.defined() ? lookup_ref_logps(s.val_ref_table, b) : at::Tensor();
    auto out = batch_loss(*r.model, b, lc, StepCounts{b.num_sft_tokens, b.num_questions}, ref);
    for (auto& [k, v] : out.sums) sums[k] += v;
  }
  distributed::sum_over_ranks(r.world, sums);
  r.model->train();
  Metrics m;
  for (auto& [k, v] : finish_metrics(sums)) m["val/" + k] = v;
  m["val/loss"] = loss_from_sums(lc, sums);  // the loss of the whole held-out set as one batch
  return m;
}

// What one optimiser step measured.
struct StepOut {
  bool applied = false;  // false: a non-finite loss, the step skipped
  bool stop = false;     // every rank agreed to stop (a signal reached one of them)
  bool checkpoint_due = false;  // checkpoint.every_minutes passed (on any rank's clock: all agree)
  Metrics metrics;
};

// One optimiser step: the accumulation group's micro-batches forward and backward (the loss normalised by the
// group's global counts), gradients summed over ranks, clipped, AdamW.
StepOut train_step(Run& r, Stage& s) {
  const auto t0 = Clock::now();
  if (r.device.is_cpu()) reset_cpu_peak();  // alloc_peak_gb below: this step's peak
  std::vector<data::Batch> micro;  // the whole group first: the loss is normalised by its global counts
  double wait = 0;
  for (int64_t k = 0; k < s.optim.grad_accum; ++k) {
    const auto w0 = Clock::now();
    micro.push_back(to_device(s.loader->next(), r.device));
    wait += seconds_since(w0);
  }
  StepCounts counts;
  int64_t tokens = 0, max_len = 0, slots = 0;
  StepWork work;  // this rank's share, for the FLOP count
  for (auto& b : micro) {
    counts.sft_tokens += b.num_sft_tokens, counts.questions += b.num_questions, tokens += b.num_tokens;
    slots += b.num_slots;
    max_len = std::max<int64_t>(max_len, b.input_ids.size(1));
    work.head_rows += b.targets.target.numel();
    work.tiles += b.pixel_values.defined() ? b.pixel_values.size(0) : 0;
  }
  work.tokens = tokens, work.row_length = max_len;
  // Data parallel: the counts of the whole step over all ranks, and a stop signal every rank agrees on.
  const double minutes = r.cfg.checkpoint.every_minutes;
  const bool due = minutes > 0 && seconds_since(r.last_checkpoint) >= 60 * minutes;
  std::vector<int64_t> agreed{counts.sft_tokens, counts.questions, util::stop_requested() ? 1 : 0, due ? 1 : 0};
  distributed::sum_over_ranks(r.world, agreed);
  counts = StepCounts{agreed[0], agreed[1]};
  StepOut out;
  out.stop = agreed[2] > 0;
  out.checkpoint_due = agreed[3] > 0;
  if (r.watch) r.watch(StepView{s.index, s.step, *r.model, micro});
  Metrics sums;
  double loss = 0;
  for (size_t k = 0; k < micro.size(); ++k) {
    s.opt->sync_next_backward(k + 1 == micro.size());  // gradients are summed over ranks in the last backward
    const auto& b = micro[k];
    LossOut lo;
    {
      AutocastScope amp(r.autocast);  // forward in the compute dtype; backward outside, as torch.autocast
      lo = batch_loss(*r.model, b, s.loss, counts, s.ref_table.defined() ? lookup_ref_logps(s.ref_table, b) : at::Tensor());
    }
    lo.loss.backward();
    loss += lo.loss.item<double>();
    for (auto& [kk, v] : lo.sums) sums[kk] += v;
  }
  s.opt->finish_backward();
  if (r.world) {  // the step's loss, tokens and metric sums over all ranks
    sums["step/loss"] = loss, sums["step/tokens"] = static_cast<double>(tokens), sums["step/slots"] = static_cast<double>(slots);
    distributed::sum_over_ranks(r.world, sums);
    loss = sums["step/loss"], tokens = static_cast<int64_t>(sums["step/tokens"]), slots = static_cast<int64_t>(sums["step/slots"]);
  }
  if (!std::isfinite(loss)) {
    const auto pos = s.loader->position();
    const std::string where = fmt::format("non-finite loss {} at step {} of stage {} (epoch {}, batch {})", loss, s.step,
                                          s.cfg.name, pos.epoch, pos.batch);
    s.opt->zero_grad();
    if (r.cfg.nonfinite == "stop") throw std::runtime_error(where + "; the last checkpoint is intact");
    log::warn("{}: step skipped", where);
    return out;
  }
  const double gnorm = s.opt->clip_grad_norm(s.optim.grad_clip);  // the global norm
  const double lr = lr_at(s.step, s.total, s.optim);
  s.opt->step(lr);
  out.applied = true;

  const double secs = seconds_since(t0);
  auto& m = out.metrics = finish_metrics(sums);
  // Every rank ran the same model on its own share: the step's FLOPs are this rank's times the ranks.
  const double tflops = r.nranks * step_flops(*r.model, work).total() / secs / 1e12;
  const double peak = r.nranks * peak_tflops_for(r.device, r.cfg.log.peak_tflops);
  m["loss"] = loss, m["grad_norm"] = gnorm, m["lr"] = lr, m["tokens_per_s"] = static_cast<double>(tokens) / secs;
  m["step_ms"] = 1e3 * secs, m["data_wait_ms"] = 1e3 * wait, m["peak_mem_gb"] = peak_memory_gb(r.device);
  m["tflops"] = tflops;
  // On CPU, the caching allocator's most bytes in large (>= 1 MiB) blocks during this step (every block with
  // PHANTOM_CPU_COUNT_SMALL=1): what `phantom plan` predicts (docs/scale.md); peak_mem_gb is the process's max
  // resident set since it started.
  if (const auto a = cpu_cache_stats(); r.device.is_cpu() && a.peak_live_bytes > 0)
    m["alloc_peak_gb"] = static_cast<double>(a.peak_live_bytes) / (1024.0 * 1024 * 1024);
  // Padding: the share of the batch tensor's positions that hold no token (packing drives it towards 0).
  if (slots > 0) m["padding"] = 1.0 - static_cast<double>(tokens) / static_cast<double>(slots);
  if (r.world) m["grad_sync_ms"] = s.opt->last_sync_ms(), m["buckets_in_backward"] = static_cast<double>(s.opt->last_overlapped());
  if (peak > 0) m["mfu"] = tflops / peak;
  return out;
}

// The stage's steps from s.step to s.total. Returns false when the run stopped (signal or stop_after), after a
// checkpoint.
bool loop(Run& r, Stage& s, int64_t stop_after) {
  const auto& cfg = r.cfg;
  r.model->train();
  // On a terminal: a progress bar with ETA instead of the per-step lines (those stay for logs and pipes).
  std::unique_ptr<log::Progress> bar;
  if (log::stdout_is_terminal()) bar = std::make_unique<log::Progress>("stage " + s.cfg.name, s.total, 10.0, s.step);
  while (s.step < s.total) {
    StepOut o;
    const data::LoaderPosition before = s.loader->position();
    try {
      o = train_step(r, s);
    } catch (const data::DataError&) {
      // A bad sample under data.on_error: fail. The steps done so far are kept: a checkpoint at the last step
      // boundary (the loader back where that step left it), then the error.
      if (bar) bar->clear();
      if (s.step > 0 && !r.world) {
        s.loader->restore(before);
        checkpoint(r, s, false);
        log::info("checkpoint of step {} of stage {} saved before the data error", s.step, s.cfg.name);
      }
      throw;
    }
    ++s.step;
    if (o.applied) {
      ++s.applied, ++r.result.global_step, ++r.result.steps_this_run;
      r.result.losses.push_back(o.metrics["loss"]);
      auto& m = o.metrics;
      if (bar) {
        auto opt_metric = [&](const char* k, const char* label) {
          return m.count(k) ? fmt::format(" {} {:.3f}", label, m[k]) : std::string();
        };
        bar->update(s.step, fmt::format("loss {:.4f}{}{} lr {:.2e} | {:.0f} tok/s", m["loss"], opt_metric("po", "po"),
                                        opt_metric("rewards/accuracies", "acc"), m["lr"], m["tokens_per_s"]));
      } else if (s.step % cfg.log.every_steps == 0 || s.step == s.total) {
        log::info("{}", step_line(r.result.global_step, s.cfg.name, s.step, s.total, m));
      }
      m["stage"] = static_cast<double>(s.index);
      r.sink.emit(r.result.global_step, m);
      r.result.last_metrics = m;
    } else if (bar) {
      bar->update(s.step, "step skipped (non-finite loss)");
    }
    if (cfg.validation.every_steps > 0 && s.step % cfg.validation.every_steps == 0 && s.step < s.total) {
      if (bar) bar->clear();
      auto v = validate(r, s);
      if (!v.empty()) r.sink.emit(r.result.global_step, v), log::info("validation: {}", nlohmann::json(v).dump());
    }
    const bool stop = o.stop || (stop_after > 0 && r.result.steps_this_run >= stop_after);
    if (stop && s.step < s.total) {
      if (bar) bar->clear();
      checkpoint(r, s, false);
      log::info("stopped at step {} of stage {}: checkpoint saved; continue with --resume", s.step, s.cfg.name);
      return false;
    }
    if (((cfg.checkpoint.every_steps > 0 && s.step % cfg.checkpoint.every_steps == 0) || o.checkpoint_due) && s.step < s.total)
      checkpoint(r, s, false);
  }
  if (bar) {
    bar->finish();
    if (!r.result.last_metrics.empty())
      log::info("{}", step_line(r.result.global_step, s.cfg.name, s.total, s.total, r.result.last_metrics));
  }
  return true;
}

// ---- stage end: validate, merge LoRA, checkpoint, export ------------------------------------------------------------

// The model as a Hugging Face checkpoint in <run>/<stage name>, with the tokenizer; returns the directory.
std::string export_stage(Run& r, const std::string& stage_name) {
  const auto& cfg = r.cfg;
  const std::string export_dir = (fs::path(r.dir) / stage_name).string();
  if (r.writer) {
    save_phantom(*r.model, export_dir);
    // Only the tokenizer's files: data.tokenizer may be the start checkpoint's directory, whose weights and
    // config.json must never replace the ones just written.
    export_tokenizer(cfg.data.tokenizer, export_dir, *r.tok, {"<img>", "</img>", r.model->cfg.image_token});
  }
  r.result.final_model = export_dir;
  return export_dir;
}

void finish_stage(Run& r, Stage& s) {
  if (s.applied == 0 && !s.resuming)
    // Every step was skipped (a non-finite loss each time: NaN weights, a broken batch): nothing was learned, so
    // nothing is exported and the run does not pretend to be done.
    throw std::runtime_error(fmt::format("stage {}: all {} steps were skipped (non-finite loss); nothing exported, "
                                         "the last checkpoint is intact (check the model's weights and the data)",
                                         s.cfg.name, s.total));
  auto v = validate(r, s);
  if (!v.empty()) r.sink.emit(r.result.global_step, v), log::info("stage {} validation: {}", s.cfg.name, nlohmann::json(v).dump());
  if (r.skipped.total()) log::warn("data: {}", r.skipped.summary());
  log::info("data: {}", r.enc->counts_summary());  // so far in this run (every stage, validation included)
  if (const int64_t merged = finish_stage_weights(*r.model)) log::info("stage {}: {} LoRA adapters merged into the base weights", s.cfg.name, merged);
  // The stage-end checkpoint first: a failed export (a full disk) then loses nothing, and --resume writes the
  // export again from it (resume()).
  checkpoint(r, s, true);
  const std::string export_dir = export_stage(r, s.cfg.name);
  log::info("stage {} done: model exported to {}", s.cfg.name, export_dir);
}

// A stage's data file, its format and the words errors name it by; a loss that needs triples on another format
// is a config error.
void stage_data(const RunConfig& cfg, int64_t si, std::string& path, std::string& format, std::string& who) {
  const auto& sc = cfg.stages[static_cast<size_t>(si)];
  path = sc.data.empty() ? cfg.data.train : sc.data;
  format = sc.format.empty() ? cfg.data.format : sc.format;
  who = "stage " + sc.name + " (stages." + std::to_string(si) + ".format" + (sc.format.empty() ? " unset, data.format" : "") +
        " = " + format + ")";
  // A meta file may list preference datasets (MMPR's layout); whether every one does is checked once it is read.
  if (needs_preference_data(sc.loss) && format != "preference" && format != "internvl_meta")
    throw config::ConfigError("config error: " + who + ": loss " + loss_kind_name(sc.loss) + " needs preference triples but " + path +
                              " is read as '" + format + "'; set stages." + std::to_string(si) +
                              ".format: preference for a file of triples");
}

// A preference loss on a meta file: every dataset in it must hold preference rows; the first conversation names
// its file and line.
void check_stage_samples(const RunConfig& cfg, int64_t si, const std::string& path, const std::string& format,
                         const std::string& who) {
  const auto& sc = cfg.stages[static_cast<size_t>(si)];
  if (!needs_preference_data(sc.loss)) return;
  data::DataConfig dc = cfg.data;
  dc.format = format;
  for (const auto& src : data::annotation_sources(path, dc)) {
    if (src.cfg.format == "preference") continue;
    const auto f = data::index_file(src.path, src.cfg.fields.image);
    const std::string where = f.rows.empty() ? src.path : data::row_where(src.path, f.rows.front(), f.array);
    throw config::ConfigError("config error: " + who + ": loss " + loss_kind_name(sc.loss) + " needs preference rows but " +
                              where + " is a conversation without rejected answers (a meta file's datasets are read "
                              "in their \"format\", else in the format their first row looks like)");
  }
}

// Before the first step: every stage still to run reads its data (file, format, field map), the held-out file
// and the benchmark are read and checked, so a mistake in the last stage's file fails now, not after the earlier
// stages trained. The samples stay cached for their stage.
void check_inputs(Run& r, const TrainState& st) {
  const auto& cfg = r.cfg;
  for (int64_t si = st.stage; si < static_cast<int64_t>(cfg.stages.size()); ++si) {
    std::string path, format, who;
    stage_data(cfg, si, path, format, who);
    r.samples_of(path, format, who);
    check_stage_samples(cfg, si, path, format, who);
  }
  for (int64_t si = st.stage; si < static_cast<int64_t>(cfg.stages.size()); ++si)
    validation_samples(r, cfg.stages[static_cast<size_t>(si)]);
  if (!cfg.validation.benchmark.empty() && r.writer) {
    eval::ReadOptions ro;
    ro.skip_hint = "";  // the trainer has no switch to drop bad rows: they are to be fixed
    try {
      r.benchmark_items = eval::read_benchmark(eval::bench_from_name(cfg.validation.benchmark_kind), {cfg.validation.benchmark}, ro).items;
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("validation.benchmark: ") + e.what());
    }
    log::info("validation.benchmark: {} questions in {}", r.benchmark_items.size(), cfg.validation.benchmark);
  }
}

// One stage start to end. Returns false when the run stopped early.
bool run_stage(Run& r, int64_t si, const TrainState& st, const std::string& ckpt, int64_t stop_after) {
  const auto& cfg = r.cfg;
  Stage s{si, cfg.stages[static_cast<size_t>(si)]};
  s.resuming = !ckpt.empty() && si == st.stage && st.stage_step > 0;
  s.optim = s.cfg.optim.resolve(cfg.optim);
  s.loss = cfg.preference.loss(s.cfg.loss);
  stage_data(cfg, si, s.train_path, s.format, s.who);

  init_from(r, s);
  select_trainable(r, s);
  make_optimizer(r, s, ckpt);
  make_loader(r, s, st);
  reference_logps(r, s, st, ckpt);
  if (!loop(r, s, stop_after)) return false;
  finish_stage(r, s);
  const bool last = si + 1 == static_cast<int64_t>(cfg.stages.size());
  if (!last && (util::stop_requested() || (stop_after > 0 && r.result.steps_this_run >= stop_after))) return false;
  return true;
}

// ---- held-out benchmark through generation (the paper's protocol: beam search, 3 beams) ----------------------------

// `fresh`: a stage trained in this process, so answers left by an earlier, interrupted benchmark belong to
// another model and are discarded; otherwise (a --resume after the last stage) they are the same model's and kept.
void benchmark(Run& r, bool fresh) {
  const auto& cfg = r.cfg;
  if (cfg.validation.benchmark.empty() || !r.writer) return;  // rank 0 alone: generation needs no other rank
  eval::RunOptions ro;
  ro.out_dir = (fs::path(r.dir) / "benchmark").string();  // as `phantom eval --out <run>/benchmark` writes it
  ro.name = "benchmark";
  ro.batch_size = cfg.data.batch_size;
  ro.num_beams = cfg.validation.num_beams;
  ro.limit = cfg.validation.benchmark_limit;
  const auto t0 = Clock::now();
  AutocastScope amp(r.autocast);
  const eval::Bench kind = eval::bench_from_name(cfg.validation.benchmark_kind);  // checked with the config
  ro.fresh = fresh;
  if (!fresh) log::info("benchmark: continuing with the answers already in {}", ro.out_dir);
  auto report = eval::run_benchmark(*r.model, *r.tok, *r.enc, r.tiles, kind, r.benchmark_items, ro).report;
  // benchmark/accuracy as a fraction (as the other metrics of the run); a scorer without an accuracy (MME's scores,
  // ChartQA's relaxed accuracy...) gives its headline metric as it reports it.
  Metrics scores;
  if (report.metrics.count("accuracy")) scores["benchmark/accuracy"] = report.metrics["accuracy"] / 100;
  else if (report.metrics.count(report.headline)) scores["benchmark/" + report.headline] = report.metrics[report.headline];
  for (const auto& [k, v] : scores) r.result.last_metrics[k] = v;
  r.sink.emit(r.result.global_step, scores);
  log::info("benchmark {} ({}): {} on {} questions ({:.1f} s); answers in {}/benchmark.json", cfg.validation.benchmark,
            cfg.validation.benchmark_kind, nlohmann::json(scores).dump(), report.items.size(), seconds_since(t0), ro.out_dir);
  if (!cfg.validation.open_questions) return;
  ro.name = "benchmark_open";
  auto open = eval::run_open_questions(*r.model, *r.tok, *r.enc, r.tiles, r.benchmark_items, ro);
  const double open_acc = open.metrics["accuracy"] / 100;
  r.result.last_metrics["benchmark/open_accuracy"] = open_acc;
  r.sink.emit(r.result.global_step, {{"benchmark/open_accuracy", open_acc}});
  log::info("benchmark, open questions: the named option is right for {:.2f}% of {}; answers in {}/benchmark_open.json",
            100 * open_acc, open.items.size(), ro.out_dir);
}

}  // namespace

RecipeResult run_recipe(RunConfig& cfg, const std::string& run_dir, const std::string& resolved_yaml,
                        const std::string& resume_arg, int64_t stop_after_steps, const StepWatcher& watch) {
  util::StopOnSignals signals;  // SIGINT/SIGTERM: stop at the next step boundary with a checkpoint
  Run r{cfg, run_dir, resolved_yaml};
  r.watch = watch;
  r.result.run_dir = run_dir;
  setup(r);
  load_model(r);
  std::string ckpt;
  const TrainState st = resume(r, resume_arg, ckpt);
  r.run_id = ckpt.empty() ? new_run_id() : st.run_id;  // a resumed run keeps its id (empty: written before ids)
  r.base_global_batch = st.base_global_batch ? st.base_global_batch
                        : st.global_batch    ? st.global_batch  // written before base_global_batch
                                             : cfg.data.batch_size * r.nranks;
  if (r.writer) log::info("run id {}", r.run_id.empty() ? std::string("(none: the checkpoint predates run ids)") : r.run_id);
  check_inputs(r, st);
  r.result.global_step = st.global_step;
  const bool stages_left = st.stage < static_cast<int64_t>(cfg.stages.size());
  for (int64_t si = st.stage; si < static_cast<int64_t>(cfg.stages.size()); ++si) {
    bool go_on = false;
    try {
      go_on = run_stage(r, si, st, ckpt, stop_after_steps);
    } catch (const util::Stopped& e) {  // stopped before the stage's first step: the last checkpoint stands
      log::warn("{}", e.what());
    }
    if (!go_on) {
      r.result.interrupted = true;
      return r.result;
    }
  }
  try {
    benchmark(r, stages_left);
  } catch (const util::Stopped& e) {  // the model is exported; --resume continues the benchmark from its answers
    log::warn("{}", e.what());
    r.result.interrupted = true;
  }
  return r.result;
}

}  // namespace phantom::recipe
