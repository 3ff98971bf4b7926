// Keeps freed memory in the process instead of returning it to the kernel, so the large tensors a training step
// allocates again every step (activations, logits chunks, gradients, AdamW temporaries, batch pixels) reuse
// pages that are already mapped. With glibc's defaults every allocation above 32 MiB is a fresh mmap whose pages
// the kernel must fault in and zero on first touch: 12-16 % of a CPU training step measured by `perf` on the
// 0.5B-shaped benchmark (docs/benchmarks.md). What jemalloc/tcmalloc do for PyTorch on CPU, with glibc's own knobs:
// no mmap for large blocks (they come from the heap) and no trimming of the heap's top.
//
// On by default for every `phantom` command; PHANTOM_MALLOC=default keeps glibc's behaviour (e.g. to compare).
#pragma once

namespace phantom::util {

// Returns false when the environment asked for glibc's defaults (nothing changed).
bool keep_freed_memory();

}  // namespace phantom::util
