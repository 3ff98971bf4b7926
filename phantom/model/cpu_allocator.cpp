#include "phantom/model/cpu_allocator.h"

#include "phantom/util/parse.h"

#include <c10/core/Allocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <stdexcept>

#include <cstdlib>
#include <atomic>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace phantom {

namespace {

constexpr size_t kMinCached = size_t{1} << 20;  // smaller blocks: glibc's free lists reuse them well
constexpr size_t kGranule = size_t{1} << 16;    // sizes rounded up to 64 KiB: near sizes share blocks

struct Block {
  void* ptr;
  size_t size;
};

class CachingCpuAllocator final : public c10::Allocator {
 public:
  static CachingCpuAllocator& instance() {
    static auto* a = new CachingCpuAllocator();  // never destroyed: tensors may outlive static destructors
    return *a;
  }
  void set_limit(size_t limit) {
    std::lock_guard<std::mutex> g(mu_);
    limit_ = limit;
  }

  // Context == data for every block, so raw_allocate / raw_deallocate (used inside some ATen kernels) work; the
  // sizes of the large blocks are kept on the side.
  c10::DataPtr allocate(size_t n) override {
    if (n < kMinCached) {
      void* p = c10::alloc_cpu(n);
      if (count_small_.load(std::memory_order_relaxed)) {
        std::lock_guard<std::mutex> g(mu_);
        small_[p] = n;
        stats_.live_bytes += n;
        if (stats_.live_bytes > stats_.peak_live_bytes) stats_.peak_live_bytes = stats_.live_bytes;
      }
      return {p, p, &release, c10::Device(c10::kCPU)};
    }
    const size_t size = (n + kGranule - 1) / kGranule * kGranule;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        ++stats_.hits;
      } else {
        ++stats_.misses;
      }
    }
    if (!p) p = c10::alloc_cpu(size);
    {
      std::lock_guard<std::mutex> g(mu_);
      live_[p] = size;
      stats_.live_bytes += size;
      if (stats_.live_bytes > stats_.peak_live_bytes) stats_.peak_live_bytes = stats_.live_bytes;
    }
    return {p, p, &release, c10::Device(c10::kCPU)};
  }

  // `always`: every later reset counts small blocks too (PHANTOM_CPU_COUNT_SMALL=1, for measurements of a whole run).
  void count_small_always() {
    std::lock_guard<std::mutex> g(mu_);
    always_count_small_ = count_small_ = true;
  }
  void reset_peak(bool count_small) {
    std::lock_guard<std::mutex> g(mu_);
    count_small_ = count_small || always_count_small_;
    stats_.peak_live_bytes = stats_.live_bytes;
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> g(mu_);
    auto s = stats_;
    s.cached_bytes = cached_;
    return s;
  }

 private:
  static void release(void* p) { instance().put(p); }
  void put(void* p) {
    if (!p) return;
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> g(mu_);
      auto live = live_.find(p);
      if (live == live_.end()) {  // a small block
        if (auto sm = small_.find(p); sm != small_.end()) stats_.live_bytes -= sm->second, small_.erase(sm);
        drop.push_back(p);
        p = nullptr;
      }
      const size_t size = p ? live->second : 0;
      if (p) live_.erase(live), stats_.live_bytes -= size;
      // Make room by freeing the oldest cached blocks of other sizes; a block larger than the limit is not kept.
      while (p && cached_ + size > limit_ && !order_.empty()) {
        const Block old = order_.front();
        order_.pop_front();
        auto& list = free_[old.size];
        for (size_t i = 0; i < list.size(); ++i)
          if (list[i] == old.ptr) {
            list[i] = list.back(), list.pop_back();
            cached_ -= old.size;
            drop.push_back(old.ptr);
            break;
          }
      }
      if (p && cached_ + size <= limit_) {
        free_[size].push_back(p);
        order_.push_back({p, size});
        cached_ += size;
        p = nullptr;
        // order_ keeps stale entries of blocks handed out again; rebuild it before it outgrows the cache.
        if (order_.size() > 1024 + 2 * (cached_ / kMinCached)) {
          order_.clear();
          for (auto& [sz, list] : free_)
            for (void* q : list) order_.push_back({q, sz});
        }
      }
    }
    for (void* d : drop) c10::free_cpu(d);
    if (p) c10::free_cpu(p);
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> live_;  // large blocks in use -> their size
  std::unordered_map<void*, size_t> small_;  // small blocks allocated while counting them -> their size
  std::atomic<bool> count_small_{false};
  bool always_count_small_ = false;
  std::deque<Block> order_;  // cached blocks, oldest first (entries of blocks handed out again are skipped)
  size_t cached_ = 0, limit_ = 0;
  CpuCacheStats stats_;
};

}  // namespace

void use_caching_cpu_allocator(size_t limit_bytes) {
  if (const char* env = std::getenv("PHANTOM_CPU_CACHE_MB")) {
    int64_t mb = 0;
    if (!util::parse_int(env, mb) || mb < 0)
      throw std::runtime_error(std::string("PHANTOM_CPU_CACHE_MB: expected a number of MiB >= 0, got '") + env + "'");
    limit_bytes = static_cast<size_t>(mb) << 20;
  }
  if (limit_bytes == 0) return;
  auto& a = CachingCpuAllocator::instance();
  a.set_limit(limit_bytes);
  // Every block counted from here on, small ones included (a map entry each: for measurements, off by default).
  if (const char* env = std::getenv("PHANTOM_CPU_COUNT_SMALL"); env && std::string(env) == "1") a.count_small_always();
  c10::SetAllocator(c10::DeviceType::CPU, &a, /*priority=*/1);
}

CpuCacheStats cpu_cache_stats() { return CachingCpuAllocator::instance().stats(); }

void reset_cpu_peak(bool count_small) { CachingCpuAllocator::instance().reset_peak(count_small); }

}  // namespace phantom
