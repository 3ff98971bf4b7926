#include "trainers/recipe/metrics.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "phantom/util/logf.h"

namespace phantom::recipe {

Metrics finish_metrics(const Metrics& s) {
  Metrics m;
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

std::string step_line(int64_t global_step, const std::string& stage, int64_t step, int64_t total, const Metrics& m) {
  auto get = [&](const char* k) {
    auto it = m.find(k);
    return it == m.end() ? 0.0 : it->second;
  };
  auto opt = [&](const char* k, const char* label) -> std::string {
    auto it = m.find(k);
    return it == m.end() ? "" : fmt::format(" {} {:.4f}", label, it->second);
  };
  std::string line = fmt::format(
      "step {:5d} [{} {}/{}] loss {:.4f}{}{}{}{} | gnorm {:.3f} lr {:.2e} | {:.0f} tok/s {:.0f} ms (data {:.0f} ms, "
      "padding {:.0f}%) | mem {:.2f} GB | {:.3f} TFLOP/s",
      global_step, stage, step, total, get("loss"), opt("sft", "sft"), opt("po", "po"), opt("rewards/margins", "margin"),
      opt("rewards/accuracies", "acc"), get("grad_norm"), get("lr"), get("tokens_per_s"), get("step_ms"),
      get("data_wait_ms"), 100 * get("padding"), get("peak_mem_gb"), get("tflops"));
  if (m.count("mfu")) line += fmt::format(" MFU {:.1f}%", 100 * get("mfu"));
  return line;
}

MetricSink::MetricSink(const std::string& run_dir, bool tensorboard) {
  std::filesystem::create_directories(run_dir);
  jsonl_.open(std::filesystem::path(run_dir) / "metrics.jsonl", std::ios::app);
  if (!jsonl_) throw std::runtime_error("cannot open " + run_dir + "/metrics.jsonl for appending");
  if (tensorboard) tb_ = std::make_unique<TensorBoardWriter>((std::filesystem::path(run_dir) / "tb").string());
}

void MetricSink::emit(int64_t global_step, const Metrics& values) {
  if (!jsonl_.is_open()) return;
  nlohmann::json j = values;
  j["step"] = global_step;
  jsonl_ << j.dump() << "\n";
  jsonl_.flush();
  if (tb_) tb_->scalars(global_step, values), tb_->flush();
}

}  // namespace phantom::recipe
