// The training recipe, top to bottom: setup -> data -> for each stage (freeze, optimiser, loop, validate,
// checkpoint, export) -> done. Read run_recipe() first; the helpers above it are each one concern.
#include "trainers/recipe/trainer.h"

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "data/collate.h"
#include "data/images/image.h"
#include "data/loader.h"
#include "data/tokenizers/tokenizer.h"
#include "phantom/io/checkpoint.h"
#include "phantom/model/runtime.h"
#include "phantom/util/log.h"
#include "trainers/recipe/batches.h"
#include "trainers/distributed/distributed.h"
#include "trainers/eval/run.h"
#include "trainers/recipe/lora.h"
#include "trainers/recipe/losses.h"
#include "trainers/recipe/optim.h"
#include "trainers/recipe/ref_logps.h"
#include "trainers/recipe/start_point.h"
#include "trainers/recipe/tensorboard.h"
#include "trainers/recipe/train_state.h"

namespace phantom::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_memory_gb(const c10::Device& dev) {
  (void)dev;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB on Linux
}

data::Batch to_device(data::Batch b, const c10::Device& d) {
  auto mv = [&](at::Tensor& t) {
    if (t.defined()) t = t.to(d);
  };
  mv(b.input_ids), mv(b.attention_mask), mv(b.positions), mv(b.mask), mv(b.pixel_values);
  return b;
}

// Averages of the metric sums with their natural denominators (tokens, questions, pairs, answers).
std::map<std::string, double> finish_metrics(const std::map<std::string, double>& s) {
  std::map<std::string, double> m;
  auto get = [&](const char* k) {
    auto it = s.find(k);
    return it == s.end() ? 0.0 : it->second;
  };
  if (get("tokens") > 0) m["sft"] = get("sft") / get("tokens");
  if (get("questions") > 0) m["po"] = get("pref") / get("questions");
  if (get("pairs") > 0)
    for (const char* k : {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"}) m[k] = get(k) / get("pairs");
  if (get("questions") > 0) m["logps/chosen"] = get("logps/chosen") / get("questions");
  if (get("answers/rejected") > 0) m["logps/rejected"] = get("logps/rejected") / get("answers/rejected");
  return m;
}

}  // namespace

// Forward FLOPs per token of the decoder (6x for a training step): 2 * params touched per token + attention.
double train_flops_per_token(const ModelConfig& c, int64_t seq_len) {
  const auto& l = c.llm;
  const double D = static_cast<double>(l.head_dim()), H = static_cast<double>(l.num_heads);
  const double C = static_cast<double>(l.hidden_size), I = static_cast<double>(l.intermediate_size);
  const double kv = static_cast<double>(l.num_kv_heads) * D;
  double per_layer = C * (H * D + 2 * kv) + H * D * C + 3 * C * I;  // qkv, o, SwiGLU
  const double dk = c.phantom == "off" ? D : 2 * D;
  double attn = 2.0 * static_cast<double>(seq_len) * H * dk;        // QK^T and PV per token (causal avg ~ /2 * 2)
  if (c.phantom != "off") per_layer += 3 * 4 * D * D * H;             // XAttn linears
  return 6.0 * (static_cast<double>(l.num_layers) * (per_layer + attn) + C * static_cast<double>(l.vocab_size));
}

namespace {

void log_step_line(int64_t gstep, const std::string& stage, int64_t step, int64_t total, double loss,
                   const std::map<std::string, double>& m, double gnorm, double lr, double tok_s, double ms,
                   double wait_ms, double mem_gb, double tflops, double mfu) {
  auto opt = [&](const char* k, const char* label) -> std::string {
    auto it = m.find(k);
    return it == m.end() ? "" : fmt::format(" {} {:.4f}", label, it->second);
  };
  std::string line = fmt::format("step {:5d} [{} {}/{}] loss {:.4f}{}{}{}{} | gnorm {:.3f} lr {:.2e} | {:.0f} tok/s {:.0f} ms "
                                 "(data {:.0f} ms) | mem {:.2f} GB | {:.3f} TFLOP/s",
                                 gstep, stage, step, total, loss, opt("sft", "sft"), opt("po", "po"),
                                 opt("rewards/margins", "margin"), opt("rewards/accuracies", "acc"), gnorm, lr, tok_s, ms,
                                 wait_ms, mem_gb, tflops);
  if (mfu > 0) line += fmt::format(" MFU {:.1f}%", 100 * mfu);
  log::info(line);
}

}  // namespace

RecipeResult run_recipe(RunConfig& cfg, const std::string& run_dir, const std::string& resolved_yaml,
                        const std::string& resume, int64_t stop_after_steps) {
  RecipeResult result;
  result.run_dir = run_dir;

  // ---- setup: threads, seed, device, process group (under torchrun) --------------------------------------------
  set_threads(cfg.run.threads);
  seed_everything(static_cast<uint64_t>(cfg.run.seed));
  World* world = World::init(cfg.distributed, cfg.run.device);  // nullptr in a single process
  const int rank = world ? world->rank() : 0, nranks = world ? world->size() : 1;
  const bool writer = rank == 0;  // only rank 0 writes metrics, TensorBoard, checkpoints and exports
  const c10::Device device = world ? world->device() : pick_device(cfg.run.device);
  // data.batch_size is per rank (torchtune / HF convention): one optimiser step sees batch x ranks x grad_accum.
  const int64_t global_batch = cfg.data.batch_size * nranks;
  const auto dtype = pick_compute_dtype(cfg.run.precision, device);
  const AutocastState autocast = AutocastState::for_compute(dtype, device);  // fp32 master weights, bf16 compute
  g_stop = false;
  auto old_int = std::signal(SIGINT, on_signal);
  auto old_term = std::signal(SIGTERM, on_signal);
  struct RestoreSignals {
    decltype(old_int) a, b;
    ~RestoreSignals() { std::signal(SIGINT, a), std::signal(SIGTERM, b); }
  } restore_signals{old_int, old_term};

  // ---- tokenizer and model -------------------------------------------------------------------------------------
  data::check_paths(cfg.data);
  if (cfg.data.tokenizer.empty()) throw config::ConfigError("config error: data.tokenizer: required for training");
  auto tok = data::load_tokenizer(cfg.data.tokenizer);
  ModelConfig mc = cfg.model;
  PhantomModel model = mc.path.empty() ? PhantomModel(mc) : load_phantom(mc.path, mc);
  if (mc.path.empty()) init_weights(*model);
  // A start point that never saw images (a bare LLM): the image tokens go into a copy of the tokenizer and their
  // rows start as the mean of the existing ones (docs/start-points.md).
  if (auto patch = add_special_tokens(cfg.data.tokenizer, {"<img>", "</img>", mc.image_token},
                                      (fs::path(run_dir) / "tokenizer").string());
      !patch.added.empty()) {
    std::vector<int32_t> ids;
    std::string names;
    for (auto& [t, id] : patch.added) ids.push_back(id), names += (names.empty() ? "" : ", ") + t + " = " + std::to_string(id);
    tok = data::load_tokenizer(patch.path);
    cfg.data.tokenizer = patch.path;
    log::info("tokenizer: added {} (now {}); {}", names, patch.path,
              init_token_rows(*model, ids, patch.old_size, tok->vocab_size()));
  }
  if (tok->vocab_size() > model->cfg.llm.vocab_size)
    throw config::ConfigError("config error: model.llm.vocab_size (" + std::to_string(model->cfg.llm.vocab_size) +
                              ") is smaller than the tokenizer's " + std::to_string(tok->vocab_size()) + " tokens");
  auto img_id = tok->token_to_id(mc.image_token);
  if (!img_id) throw std::runtime_error("the tokenizer has no image token '" + mc.image_token + "'");
  model->image_token_index = *img_id;
  model->language_model->activation_checkpointing = cfg.activation_checkpointing;
  model->to(device);
  const auto tmpl = data::ChatTemplate::resolve(cfg.data.chat_template, model->cfg.llm.family);
  // Exported models stop generation where this template ends a turn, unless the checkpoint named its own eos.
  if (model->cfg.llm.eos_token_ids.empty())
    if (auto e = tok->token_to_id(tmpl.assistant_end)) {
      model->cfg.llm.eos_token_ids = {static_cast<int64_t>(*e)};
      model->language_model->cfg.eos_token_ids = model->cfg.llm.eos_token_ids;
    }
  data::SampleEncoder enc(*tok, tmpl, data::ImageTokens::from_tokenizer(*tok, model->tokens_per_tile()));
  enc.set_image_placement(cfg.data.image_placement);  // and the exported model remembers it
  model->cfg.image_placement = cfg.data.image_placement;
  const int32_t pad_id = tok->token_to_id("<|endoftext|>").value_or(0);
  data::TileOptions tiles;
  tiles.tile = static_cast<int>(model->cfg.vision.image_size);
  tiles.max_num = static_cast<int>(cfg.data.max_tiles);
  tiles.use_thumbnail = cfg.data.use_thumbnail;
  auto [n_params, n_train] = count_parameters(*model);
  log::info("model: {} parameters ({} family, Phantom {}), {} visual tokens per tile, device {}, compute {}{}", n_params,
            model->cfg.llm.family, model->cfg.phantom, model->tokens_per_tile(), device.str(), c10::toString(dtype),
            autocast.enabled() ? " (autocast, fp32 master weights)" : "");

  // ---- outputs ------------------------------------------------------------------------------------------------
  std::ofstream jsonl;
  std::unique_ptr<TensorBoardWriter> tb;
  if (writer) {
    fs::create_directories(run_dir);
    jsonl.open(fs::path(run_dir) / "metrics.jsonl", std::ios::app);
    if (cfg.log.tensorboard) tb = std::make_unique<TensorBoardWriter>((fs::path(run_dir) / "tb").string());
  }
  auto emit = [&](int64_t gstep, const std::map<std::string, double>& values) {
    if (!writer) return;
    nlohmann::json j = values;
    j["step"] = gstep;
    jsonl << j.dump() << "\n";
    jsonl.flush();
    if (tb) tb->scalars(gstep, values), tb->flush();
  };

  // ---- resume ---------------------------------------------------------------------------------------------------
  TrainState st;
  std::string ckpt;
  if (!resume.empty()) {
    if (resume == "latest") {
      auto latest = latest_checkpoint(run_dir);
      if (!latest) throw std::runtime_error("--resume: no checkpoint in " + run_dir + "/checkpoints");
      ckpt = *latest;
    } else {
      ckpt = resume;
    }
    st = read_train_state(ckpt);
    // A mid-stage checkpoint of a LoRA stage holds its adapters: give the model the same tensors first.
    if (!st.stage_done && st.stage_step > 0 && st.stage < static_cast<int64_t>(cfg.stages.size()))
      attach_stage_lora(*model, cfg.stages[static_cast<size_t>(st.stage)]);
    load_checkpoint_model(ckpt, *model);
    log::info("resuming from {} (stage {}, step {}/{})", ckpt, st.stage, st.stage_step, st.stage_total);
    if (st.stage_done) ++st.stage, st.stage_step = 0, st.data = {}, st.stage_done = false;
  }
  broadcast_module(world, *model);  // data parallel: every rank starts from rank 0's weights

  // ---- data -------------------------------------------------------------------------------------------------------
  std::map<std::string, std::vector<data::Sample>> datasets;
  std::mutex skip_mu;
  data::SkipCounts skipped;
  // Samples of a file in a format (a stage may read its own format: a warm-up on conversations, then triples).
  auto samples_of = [&](const std::string& path, const std::string& format,
                        const std::string& who) -> const std::vector<data::Sample>& {
    const std::string key = format + ":" + path;
    auto it = datasets.find(key);
    if (it != datasets.end()) return it->second;
    data::DataConfig dc = cfg.data;
    dc.format = format;
    std::vector<data::Sample> s;
    try {
      s = data::read_annotations(path, dc, skipped, static_cast<uint64_t>(cfg.run.seed));
    } catch (const std::exception& e) {
      throw std::runtime_error(who + ": " + path + " read as format '" + format + "': " + e.what());
    }
    if (s.empty()) throw std::runtime_error(who + ": no usable samples in " + path + " (" + skipped.summary() + ")");
    log::info("data: {} samples from {} ({}){}", s.size(), path, format, skipped.total() ? " (" + skipped.summary() + ")" : "");
    return datasets.emplace(key, std::move(s)).first->second;
  };

  // ---- stages ------------------------------------------------------------------------------------------------------
  int64_t gstep = st.global_step, steps_this_run = 0;
  for (int64_t si = st.stage; si < static_cast<int64_t>(cfg.stages.size()); ++si) {
    const StageConfig& stage = cfg.stages[static_cast<size_t>(si)];
    const bool resuming_here = !ckpt.empty() && si == st.stage && st.stage_step > 0;
    if (!stage.init_from.empty() && !resuming_here) {
      LoadReport rep;
      auto other = load_phantom(stage.init_from, model->cfg, &rep);
      load_state_dict(*model, module_state_dict(*other), false);
      model->to(device);
      log::info("stage {}: weights from {}", stage.name, stage.init_from);
    }
    const OptimConfig oc = stage.optim.resolve(cfg.optim);
    log::info("stage {}: batch {} per rank x {} rank{} x grad_accum {} = {} questions per optimiser step", stage.name,
              cfg.data.batch_size, nranks, nranks == 1 ? "" : "s", oc.grad_accum, global_batch * oc.grad_accum);
    if (!resuming_here) attach_stage_lora(*model, stage);  // lora.rank > 0: adapters (merged at stage end)
    if (!resuming_here && stage.lora.rank > 0) broadcast_module(world, *model);  // rank 0's fresh adapters everywhere
    const Trainable trainable = select_stage_trainable(*model, stage);
    log::info("stage {} ({}): {} trainable parameters of {} ({:.2f}%) in {} tensors", stage.name, stage.loss,
              trainable.count, n_params, 100.0 * static_cast<double>(trainable.count) / static_cast<double>(n_params),
              trainable.names.size());
    StageOptimizer opt(world, trainable, oc, cfg.distributed);  // AdamW; data parallel: summed gradients, ZeRO
    if (resuming_here) opt.load(ckpt);
    const std::string memory = opt.memory_report();
    log::info("stage {}: {}", stage.name, memory);

    const std::string train_path = stage.data.empty() ? cfg.data.train : stage.data;
    const std::string format = stage.format.empty() ? cfg.data.format : stage.format;
    const std::string who = "stage " + stage.name + " (stages." + std::to_string(si) + ".format" +
                            (stage.format.empty() ? " unset, data.format" : "") + " = " + format + ")";
    const bool preference = stage.loss != "sft";
    if (preference && format != "preference")
      throw config::ConfigError("config error: " + who + ": loss " + stage.loss + " needs preference triples but " +
                                train_path + " is read as '" + format + "'; set stages." + std::to_string(si) +
                                ".format: preference for a file of triples");
    const auto& train = samples_of(train_path, format, who);
    BatchMaker maker{cfg, train, enc, tiles, pad_id, preference, cfg.shared_prefix, &skip_mu, &skipped};
    data::LoaderOptions lo;
    lo.global_batch = global_batch;
    lo.rank = rank, lo.world = nranks;  // each rank reads its batch_size share of the same global batches
    lo.seed = static_cast<uint64_t>(cfg.run.seed) + static_cast<uint64_t>(si) * 7919;
    lo.shuffle = cfg.data.shuffle;
    lo.group_by_length = cfg.data.group_by_length;
    lo.prefetch = std::max<int64_t>(1, cfg.data.prefetch);
    data::Loader<data::Batch> loader(estimated_lengths(train, model->tokens_per_tile()), lo, maker);
    const int64_t per_epoch = std::max<int64_t>(1, loader.batches_per_epoch() / oc.grad_accum);
    const int64_t total = stage.max_steps > 0 ? stage.max_steps
                                              : std::max<int64_t>(1, static_cast<int64_t>(std::ceil(stage.epochs * static_cast<double>(per_epoch))));
    int64_t step = 0;
    if (resuming_here) step = st.stage_step, loader.restore(st.data);
    LossConfig lc{stage.loss, cfg.preference.beta, cfg.preference.gamma, cfg.preference.sft_weight};

    // DPO / IPO: the reference log-probs of every sample, from the on-disk cache or one pass before training.
    at::Tensor ref_table;
    std::string ref_identity;
    if (stage.loss == "dpo" || stage.loss == "ipo") {
      RefSetup rs;
      const fs::path cache_dir = cfg.preference.ref_cache_dir.empty() ? fs::path(run_dir) / "ref_logps"
                                                                       : fs::path(cfg.preference.ref_cache_dir);
      rs.cache_path = (cache_dir / (stage.name + ".safetensors")).string();
      rs.stage = stage.name;
      rs.reference = stage.reference;
      if (resuming_here) rs.resumed_identity = st.ref_identity;
      if (resuming_here && rs.resumed_identity.empty())
        throw std::runtime_error("stage " + stage.name + ": the checkpoint " + ckpt + " records no reference model");
      rs.data_key = ref_data_key(train_path, train, cfg.data.tokenizer, enc, tiles, cfg.data.max_length, dtype);
      rs.num_samples = static_cast<int64_t>(train.size());
      for (auto& s : train) rs.max_answers = std::max<int64_t>(rs.max_answers, 1 + static_cast<int64_t>(s.rejected.size()));
      rs.batch = cfg.data.batch_size;
      BatchMaker rm = maker;
      rm.empty_ok = true;
      rs.make = rm;
      rs.device = device;
      rs.autocast = autocast;
      auto ref = reference_logps(*model, rs);
      ref_table = ref.table, ref_identity = ref.identity;
      result.ref_passes += ref.computed ? 1 : 0;
    }

    auto checkpoint = [&](bool done) {
      TrainState now{si, step, gstep, total, done, loader.position()};
      now.ref_identity = ref_identity;
      auto* state = opt.checkpoint_state();  // the full AdamW state (gathered on rank 0 under ZeRO)
      if (writer) save_checkpoint(run_dir, *model, state, now, resolved_yaml, cfg.checkpoint.keep_last);
    };
    auto validate = [&]() -> std::map<std::string, double> {
      if (cfg.data.val.empty()) return {};
      const auto& val = samples_of(cfg.data.val, cfg.data.format, "validation (data.val, data.format)");
      const bool val_pref = !val.empty() && val.front().is_preference();
      BatchMaker vm{cfg, val, enc, tiles, pad_id, val_pref, cfg.shared_prefix, &skip_mu, &skipped};
      torch::NoGradGuard ng;
      model->eval();
      std::map<std::string, double> sums;
      const int64_t n = static_cast<int64_t>(val.size()), B = global_batch;
      int64_t batches = 0;
      for (int64_t b0 = 0; b0 < n; b0 += B) {
        if (cfg.validation.max_batches > 0 && batches >= cfg.validation.max_batches) break;
        ++batches;
        const auto [first, last] = rank_share(b0, std::min(n, b0 + B), rank, nranks);  // this rank's part
        if (first == last) continue;
        std::vector<size_t> idx;
        for (int64_t i = first; i < last; ++i) idx.push_back(static_cast<size_t>(i));
        auto b = to_device(vm(idx), device);
        LossConfig vl{val_pref ? "po" : "sft", cfg.preference.beta, cfg.preference.gamma, cfg.preference.sft_weight};
        AutocastScope amp(autocast);
        auto out = batch_loss(*model, b, vl, StepCounts{b.num_sft_tokens, b.num_questions});
        for (auto& [k, v] : out.sums) sums[k] += v;
      }
      sum_over_ranks(world, sums);
      model->train();
      std::map<std::string, double> m;
      for (auto& [k, v] : finish_metrics(sums)) m["val/" + k] = v;
      return m;
    };

    model->train();
    // On a terminal: a progress bar with ETA instead of the per-step lines (those stay for logs and pipes).
    std::unique_ptr<log::Progress> bar;
    if (log::stdout_is_terminal()) bar = std::make_unique<log::Progress>("stage " + stage.name, total, 10.0, step);
    for (; step < total; ++step) {
      const auto t0 = Clock::now();
      // Fetch the whole accumulation group first: the loss is normalised by its global counts.
      std::vector<data::Batch> micro;
      double wait = 0;
      for (int64_t k = 0; k < oc.grad_accum; ++k) {
        const auto w0 = Clock::now();
        micro.push_back(to_device(loader.next(), device));
        wait += seconds_since(w0);
      }
      StepCounts counts;
      int64_t tokens = 0, max_len = 0;
      for (auto& b : micro) {
        counts.sft_tokens += b.num_sft_tokens, counts.questions += b.num_questions, tokens += b.num_tokens;
        max_len = std::max<int64_t>(max_len, b.input_ids.size(1));
      }
      // Data parallel: the counts of the whole step over all ranks, and a stop signal every rank agrees on.
      std::vector<int64_t> agreed{counts.sft_tokens, counts.questions, g_stop ? 1 : 0};
      sum_over_ranks(world, agreed);
      counts = StepCounts{agreed[0], agreed[1]};
      std::map<std::string, double> sums;
      double loss = 0;
      for (size_t k = 0; k < micro.size(); ++k) {
        opt.sync_next_backward(k + 1 == micro.size());  // gradients are summed over ranks in the last backward
        const auto& b = micro[k];
        LossOut out;
        {
          AutocastScope amp(autocast);  // forward in the compute dtype; backward outside, as torch.autocast
          out = batch_loss(*model, b, lc, counts, ref_table.defined() ? lookup_ref_logps(ref_table, b) : at::Tensor());
        }
        out.loss.backward();
        loss += out.loss.item<double>();
        for (auto& [kk, v] : out.sums) sums[kk] += v;
      }
      opt.finish_backward();
      if (world) {  // the step's loss, tokens and metric sums over all ranks
        sums["step/loss"] = loss, sums["step/tokens"] = static_cast<double>(tokens);
        sum_over_ranks(world, sums);
        loss = sums["step/loss"], tokens = static_cast<int64_t>(sums["step/tokens"]);
      }
      if (!std::isfinite(loss)) {
        const auto pos = loader.position();
        const std::string where = fmt::format("non-finite loss {} at step {} of stage {} (epoch {}, batch {})", loss, step,
                                              stage.name, pos.epoch, pos.batch);
        opt.zero_grad();
        if (cfg.nonfinite == "stop") throw std::runtime_error(where + "; the last checkpoint is intact");
        if (bar) bar->clear();
        log::warn("{}: step skipped", where);
        continue;
      }
      const double gnorm = opt.clip_grad_norm(oc.grad_clip);  // the global norm
      const double lr = lr_at(step, total, oc);
      opt.step(lr);
      ++gstep, ++steps_this_run;
      result.losses.push_back(loss);

      // ---- metrics ----
      const double secs = seconds_since(t0);
      auto m = finish_metrics(sums);
      const double flops = train_flops_per_token(model->cfg, max_len) * static_cast<double>(tokens);
      const double tflops = flops / secs / 1e12;
      const double peak = nranks * (cfg.log.peak_tflops > 0 ? cfg.log.peak_tflops : (device.is_cuda() ? 989.0 : 0.0));
      m["loss"] = loss, m["grad_norm"] = gnorm, m["lr"] = lr, m["tokens_per_s"] = static_cast<double>(tokens) / secs;
      m["step_ms"] = 1e3 * secs, m["data_wait_ms"] = 1e3 * wait, m["peak_mem_gb"] = peak_memory_gb(device);
      m["tflops"] = tflops;
      if (world) m["grad_sync_ms"] = opt.last_sync_ms(), m["buckets_in_backward"] = static_cast<double>(opt.last_overlapped());
      if (peak > 0) m["mfu"] = tflops / peak;
      if (bar) {
        auto opt_metric = [&](const char* k, const char* label) {
          return m.count(k) ? fmt::format(" {} {:.3f}", label, m[k]) : std::string();
        };
        bar->update(step + 1, fmt::format("loss {:.4f}{}{} lr {:.2e} | {:.0f} tok/s", loss, opt_metric("po", "po"),
                                          opt_metric("rewards/accuracies", "acc"), lr, m["tokens_per_s"]));
      } else if ((step + 1) % cfg.log.every_steps == 0 || step + 1 == total) {
        log_step_line(gstep, stage.name, step + 1, total, loss, m, gnorm, lr, m["tokens_per_s"], m["step_ms"],
                      m["data_wait_ms"], m["peak_mem_gb"], tflops, peak > 0 ? tflops / peak : 0);
      }
      m["stage"] = static_cast<double>(si);
      emit(gstep, m);
      result.last_metrics = m;

      if (cfg.validation.every_steps > 0 && (step + 1) % cfg.validation.every_steps == 0 && step + 1 < total) {
        if (bar) bar->clear();
        auto v = validate();
        if (!v.empty()) emit(gstep, v), log::info("validation: {}", nlohmann::json(v).dump());
      }
      const bool signalled = world ? agreed[2] > 0 : g_stop.load();
      const bool stop_now = signalled || (stop_after_steps > 0 && steps_this_run >= stop_after_steps);
      if (stop_now && step + 1 < total) {
        if (bar) bar->clear();
        ++step;
        checkpoint(false);
        log::info("stopped at step {} of stage {}: checkpoint saved; continue with --resume", step, stage.name);
        result.interrupted = true;
        return result;
      }
      if (cfg.checkpoint.every_steps > 0 && (step + 1) % cfg.checkpoint.every_steps == 0 && step + 1 < total) {
        ++step;
        checkpoint(false);
        --step;
      }
    }

    if (bar) {
      bar->finish();
      if (!result.last_metrics.empty()) {
        auto& m = result.last_metrics;
        log_step_line(gstep, stage.name, total, total, m["loss"], m, m["grad_norm"], m["lr"], m["tokens_per_s"],
                      m["step_ms"], m["data_wait_ms"], m["peak_mem_gb"], m["tflops"], m.count("mfu") ? m["mfu"] : 0);
      }
    }
    // ---- stage end: validate, export the model, checkpoint ----
    auto v = validate();
    if (!v.empty()) emit(gstep, v), log::info("stage {} validation: {}", stage.name, nlohmann::json(v).dump());
    if (skipped.total()) log::warn("data: {}", skipped.summary());
    const std::string export_dir = (fs::path(run_dir) / stage.name).string();
    if (const int64_t merged = merge_lora(*model)) log::info("stage {}: {} LoRA adapters merged into the base weights", stage.name, merged);
    if (writer) {
      save_phantom(*model, export_dir);
      if (fs::is_directory(cfg.data.tokenizer))  // SentencePiece with added_tokens.json
        fs::copy(cfg.data.tokenizer, export_dir, fs::copy_options::overwrite_existing | fs::copy_options::recursive);
      else
        fs::copy_file(cfg.data.tokenizer, fs::path(export_dir) / fs::path(cfg.data.tokenizer).filename(),
                      fs::copy_options::overwrite_existing);
    }
    result.final_model = export_dir;
    checkpoint(true);
    log::info("stage {} done: model exported to {}", stage.name, export_dir);
    st.data = {};
    if (stop_after_steps > 0 && steps_this_run >= stop_after_steps && si + 1 < static_cast<int64_t>(cfg.stages.size())) {
      result.interrupted = true;
      return result;
    }
  }

  // ---- held-out benchmark through generation (the paper's protocol: beam search, 3 beams, 5 new tokens) ----
  if (!cfg.validation.benchmark.empty() && writer) {  // rank 0 alone: generation needs no other rank
    eval::RunOptions ro;
    ro.out_dir = (fs::path(run_dir) / "benchmark").string();  // as `phantom eval --out <run>/benchmark` writes it
    ro.name = "benchmark";
    ro.batch_size = cfg.data.batch_size;
    ro.num_beams = cfg.validation.num_beams;
    ro.limit = cfg.validation.benchmark_limit;
    const auto t0 = Clock::now();
    AutocastScope amp(autocast);
    auto report = eval::run_benchmark_file(*model, *tok, enc, tiles, eval::Bench::MMBench, cfg.validation.benchmark, ro);
    const double accuracy = report.metrics["accuracy"] / 100;
    result.last_metrics["benchmark/accuracy"] = accuracy;
    emit(gstep, {{"benchmark/accuracy", accuracy}});
    log::info("benchmark {}: accuracy {:.2f}% on {} questions ({:.1f} s); answers in {}/benchmark.json",
              cfg.validation.benchmark, 100 * accuracy, report.items.size(), seconds_since(t0), ro.out_dir);
    if (cfg.validation.open_questions) {
      ro.name = "benchmark_open";
      auto items = eval::read_mmbench(cfg.validation.benchmark).items;
      auto open = eval::run_open_questions(*model, *tok, enc, tiles, items, ro);
      const double open_acc = open.metrics["accuracy"] / 100;
      result.last_metrics["benchmark/open_accuracy"] = open_acc;
      emit(gstep, {{"benchmark/open_accuracy", open_acc}});
      log::info("benchmark, open questions: the named option is right for {:.2f}% of {}; answers in {}/benchmark_open.json",
                100 * open_acc, open.items.size(), ro.out_dir);
    }
  }
  return result;
}

}  // namespace phantom::train
