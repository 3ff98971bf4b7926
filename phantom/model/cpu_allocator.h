// A caching allocator for large CPU tensors. A training step allocates the same large tensors again every step
// (activations, logits chunks, gradients of the 136 M-entry embedding, batch pixels). With glibc every block above
// 32 MiB is a fresh mmap whose pages the kernel faults in and zeroes on first touch: 12-16 % of a CPU training
// step of the 0.5B-shaped benchmark by `perf` (docs/benchmarks.md). This allocator keeps freed blocks of 1 MiB and
// more, by size, and hands them out again for a request of the same (64 KiB-rounded) size - what CUDA's caching
// allocator does on the GPU and jemalloc/tcmalloc do for PyTorch on CPU. Smaller blocks go to c10's allocator.
//
// At most `limit` bytes stay cached (unused): the extra resident memory it can cost. A block that would go over is
// cached after the oldest cached blocks of other sizes are freed, or freed itself.
#pragma once

#include <cstddef>
#include <cstdint>

namespace phantom {

// Installs it as the CPU allocator of every later tensor (tensors that exist keep their own deleters).
// PHANTOM_CPU_CACHE_MB in the environment overrides `limit_bytes`; 0 leaves c10's allocator in place.
// PHANTOM_CPU_COUNT_SMALL=1 counts blocks under 1 MiB in live/peak bytes from the start (every reset keeps it):
// a training run's alloc_peak_gb then holds every tensor, as `phantom plan --measure` counts them.
void use_caching_cpu_allocator(size_t limit_bytes = size_t{1} << 30);

struct CpuCacheStats {
  int64_t hits = 0, misses = 0;  // large allocations served from the cache / by a new block
  size_t cached_bytes = 0;       // unused blocks held now
  // Bytes held by tensors now, and the most held at once since the last reset: the accounting `phantom plan` is
  // calibrated against. Large blocks (>= 1 MiB, 64 KiB-rounded) always; smaller ones only those allocated after
  // reset_cpu_peak(true) (a map entry each: off by default, for measurements).
  size_t live_bytes = 0, peak_live_bytes = 0;
};
CpuCacheStats cpu_cache_stats();
// Starts a new peak: peak_live_bytes = live_bytes; `count_small`: also count blocks under 1 MiB from now on.
void reset_cpu_peak(bool count_small = false);

}  // namespace phantom
