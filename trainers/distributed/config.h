// The `distributed:` section of a run config: backend, timeouts, gradient buckets, ZeRO stage.
#pragma once

#include <string>

#include "phantom/util/config.h"

namespace phantom::distributed {
using config::Check;

// Data parallelism over the ranks of a torchrun launch (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT);
// a process started without those variables ignores this section. See docs/distributed.md.
struct DistributedConfig {
  std::string backend = "auto";  // auto (nccl for CUDA, gloo for CPU) | gloo | nccl
  double timeout_s = 300;        // rendezvous and every collective; a rank waiting longer ends the run
  double bucket_mb = 25;         // gradients are summed in buckets of about this size during backward
  bool overlap = true;           // start a bucket's all-reduce as soon as its gradients are ready
  bool fp32_reduce = true;       // bf16 gradients are summed in fp32
  bool zero = false;             // ZeRO-1 (kept for existing configs): the same as zero_stage: 1
  int zero_stage = 0;            // 0: replicated | 1: AdamW state sharded | 2: AdamW state and gradients sharded

  // The ZeRO stage in effect: the larger of `zero` (stage 1) and `zero_stage`.
  int zero_level() const { return zero_stage > 0 ? zero_stage : (zero ? 1 : 0); }

  template <class V>
  void visit(V& v) {
    v.field("backend", backend, "auto (nccl for CUDA, gloo for CPU) | gloo | nccl",
            Check::one_of({"auto", "gloo", "nccl"}));
    v.field("timeout_s", timeout_s, "seconds a rendezvous or collective may wait before the run fails", Check::positive());
    v.field("bucket_mb", bucket_mb, "gradient all-reduce bucket size in MB", Check::positive());
    v.field("overlap", overlap, "all-reduce gradient buckets during backward as they become ready");
    v.field("fp32_reduce", fp32_reduce, "sum bf16 gradients in fp32");
    v.field("zero", zero, "ZeRO-1: shard the AdamW state over ranks (checkpoints still hold the full state)");
    v.field("zero_stage", zero_stage,
            "ZeRO stage: 0 off, 1 AdamW state sharded, 2 also gradients (each reduced to its owner rank only)",
            Check::range(0, 2));
  }
};

}  // namespace phantom::distributed
