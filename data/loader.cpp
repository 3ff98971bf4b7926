#include "data/loader.h"

#include <algorithm>
#include <numeric>

// libgomp is loaded with LibTorch's CPU library; weak, so a LibTorch without OpenMP links too.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

namespace phantom::data {

void single_threaded_worker() {
  // OpenMP's thread count is a per-thread setting: this changes the worker only, never the training thread.
  if (omp_set_num_threads) omp_set_num_threads(1);
}

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

std::vector<size_t> seeded_permutation(size_t n, uint64_t seed) {
  std::vector<size_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  uint64_t state = seed;
  for (size_t i = n; i > 1; --i) std::swap(p[i - 1], p[splitmix64(state) % i]);
  return p;
}

std::vector<size_t> epoch_sample_order(const std::vector<int64_t>& lengths, const LoaderOptions& opt, int64_t epoch) {
  const size_t n = lengths.size();
  const uint64_t seed = opt.seed * 1000003ULL + static_cast<uint64_t>(epoch);
  std::vector<size_t> order = opt.shuffle ? seeded_permutation(n, seed) : seeded_permutation(0, 0);
  if (!opt.shuffle) {
    order.resize(n);
    std::iota(order.begin(), order.end(), 0);
  }
  const int64_t unit = opt.group_unit > 0 ? opt.group_unit : opt.global_batch;
  if (!opt.group_by_length || unit <= 1) return order;
  const size_t G = static_cast<size_t>(unit), window = G * static_cast<size_t>(opt.group_window);
  std::vector<size_t> out;
  out.reserve(n);
  uint64_t state = seed ^ 0x5bd1e995ULL;
  for (size_t w = 0; w < n; w += window) {
    std::vector<size_t> part(order.begin() + static_cast<long>(w), order.begin() + static_cast<long>(std::min(n, w + window)));
    std::stable_sort(part.begin(), part.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
    // Shuffle whole batches of the window (a trailing partial batch stays last).
    const size_t full = part.size() / G;
    std::vector<size_t> batches(full);
    std::iota(batches.begin(), batches.end(), 0);
    for (size_t i = full; i > 1; --i) std::swap(batches[i - 1], batches[splitmix64(state) % i]);
    for (auto bi : batches) out.insert(out.end(), part.begin() + static_cast<long>(bi * G), part.begin() + static_cast<long>((bi + 1) * G));
    out.insert(out.end(), part.begin() + static_cast<long>(full * G), part.end());
  }
  return out;
}

}  // namespace phantom::data
