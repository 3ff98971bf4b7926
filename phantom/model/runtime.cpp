#include "phantom/model/runtime.h"

#include <sys/resource.h>

#include <thread>

#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#ifdef PHANTOM_HAS_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif


namespace phantom {

int set_threads(int64_t threads) {
  int n = threads > 0 ? static_cast<int>(threads) : static_cast<int>(std::thread::hardware_concurrency());
  if (n < 1) n = 1;
  torch::set_num_threads(n);
  return torch::get_num_threads();
}

c10::Device pick_device(const std::string& name, int local_rank) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  const bool cuda = torch::cuda::is_available();
  if (name == "cuda" && !cuda)
    throw std::runtime_error("run.device=cuda but no CUDA device is available (use run.device=cpu or auto)");
  if (cuda) {
    const int count = static_cast<int>(torch::cuda::device_count());
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
  }
  return c10::Device(c10::kCPU);
}

c10::ScalarType pick_compute_dtype(const std::string& precision, const c10::Device& device) {
  if (precision == "fp32") return c10::kFloat;
  if (precision == "bf16") return c10::kBFloat16;
  return device.is_cuda() ? c10::kBFloat16 : c10::kFloat;
}

AutocastState AutocastState::current() {
  AutocastState s;
  s.cpu = at::autocast::is_autocast_enabled(c10::DeviceType::CPU);
  s.cuda = at::autocast::is_autocast_enabled(c10::DeviceType::CUDA);
  s.cpu_dtype = at::autocast::get_autocast_dtype(c10::DeviceType::CPU);
  s.cuda_dtype = at::autocast::get_autocast_dtype(c10::DeviceType::CUDA);
  return s;
}

AutocastState AutocastState::for_compute(c10::ScalarType dtype, const c10::Device& device) {
  AutocastState s;
  if (dtype == c10::kFloat || dtype == c10::kDouble) return s;
  if (device.is_cuda()) s.cuda = true, s.cuda_dtype = dtype;
  else s.cpu = true, s.cpu_dtype = dtype;
  return s;
}

static void apply_autocast(const AutocastState& s) {
  at::autocast::set_autocast_dtype(c10::DeviceType::CPU, s.cpu_dtype);
  at::autocast::set_autocast_dtype(c10::DeviceType::CUDA, s.cuda_dtype);
  at::autocast::set_autocast_enabled(c10::DeviceType::CPU, s.cpu);
  at::autocast::set_autocast_enabled(c10::DeviceType::CUDA, s.cuda);
}

AutocastScope::AutocastScope(const AutocastState& state) : prev_(AutocastState::current()) {
  apply_autocast(state);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  apply_autocast(prev_);
}

void seed_everything(uint64_t seed, bool deterministic) {
  torch::manual_seed(seed);
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(seed);
  if (deterministic) at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
}

std::string runtime_report() {
  std::string s;
  s += "LibTorch " + std::string(TORCH_VERSION) + "\n";
  s += "  CUDA in LibTorch build: " + std::string(torch::cuda::is_available() ? "yes, " : "") +
       std::to_string(torch::cuda::device_count()) + " device(s) visible\n";
  s += "  intra-op threads: " + std::to_string(torch::get_num_threads()) + "\n";
  return s;
}

double peak_memory_gb(const c10::Device& device) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
#ifdef PHANTOM_HAS_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return static_cast<double>(stats.allocated_bytes[0].peak) / kGiB;  // [0]: StatType::AGGREGATE
  }
#endif
  (void)device;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) * 1024.0 / kGiB;  // ru_maxrss is in KiB on Linux
}

}  // namespace phantom
