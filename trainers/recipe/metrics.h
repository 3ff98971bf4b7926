// What a training run reports: the step's metrics (averages of the loss sums with their natural denominators,
// throughput, FLOPs, memory), one console line per step in llm.c's spirit, and the sinks (metrics.jsonl,
// TensorBoard) that rank 0 writes. Metric names follow TRL for the preference terms (docs/training.md, "Metrics").
#pragma once

#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "phantom/model/model_config.h"
#include "trainers/recipe/tensorboard.h"

namespace phantom::recipe {

using Metrics = std::map<std::string, double>;

// Averages of loss-term sums (batch_loss's LossOut::sums, summed over micro-batches and ranks): sft per supervised
// token, po per question, rewards/* per (chosen, rejected) pair, logps/chosen per question, logps/rejected per
// rejected answer.
Metrics finish_metrics(const Metrics& sums);

// Model FLOPs of one training step per token (6 x forward: matmuls of the decoder, attention at `seq_len`, the LM
// head), the numerator of TFLOP/s and MFU.
double train_flops_per_token(const ModelConfig& c, int64_t seq_len);

// "step    12 [step1 12/40] loss 1.2345 sft 1.1 po 0.7 margin 0.31 acc 0.62 | gnorm 0.812 lr 1.00e-05 | 2310 tok/s
// 1234 ms (data 3 ms, padding 12%) | mem 1.21 GB | 0.012 TFLOP/s MFU 3.1%" from the step's metrics (absent terms left out).
std::string step_line(int64_t global_step, const std::string& stage, int64_t step, int64_t total, const Metrics& m);

// metrics.jsonl (one JSON object per emit, with "step") and, optionally, TensorBoard events. A sink that is not
// open (ranks > 0) ignores emits.
class MetricSink {
 public:
  MetricSink() = default;
  MetricSink(const std::string& run_dir, bool tensorboard);
  void emit(int64_t global_step, const Metrics& values);

 private:
  std::ofstream jsonl_;
  std::unique_ptr<TensorBoardWriter> tb_;
};

}  // namespace phantom::recipe
