// DPO / IPO reference log-probabilities, precomputed ONCE per stage and cached on disk, so the reference model is
// never held in memory while training (docs/training.md, DPO / IPO reference log-probs).
//
// The reference is the stage's starting weights (the policy itself, before its first step) or the HF checkpoint
// `stages[i].reference`. One pass over the stage's samples, in file order, gives the summed log-prob of every
// answer; the table (samples x answers) is written as safetensors with its key in the metadata:
//
//   <cache>.safetensors   tensors  "logps"   (N, A) F32, answer a (0 = chosen) of sample n; NaN = no such answer
//                         metadata "key"     digest of the parts below
//                                  "key.<part>"  annotations, samples, tokenizer, template, preprocess, precision,
//                                                model (weights + config of the reference), format
//
// A cache whose key differs from the one expected is never used: at a stage start it is recomputed (with a
// warning naming the parts that differ); on a resume, where the starting weights are gone, it is an error unless
// `reference:` names a checkpoint to recompute from.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/annotations.h"
#include "data/sample_set.h"
#include "data/chat_template.h"
#include "data/collate.h"
#include "data/images/image.h"
#include "phantom/model/model.h"
#include "phantom/model/runtime.h"

namespace phantom::recipe {

// 128-bit non-cryptographic digest (two multiply-xorshift lanes over 8-byte words) for cache keys.
class Digest {
 public:
  Digest& bytes(const void* data, size_t n);
  Digest& str(const std::string& s);  // length-prefixed, so ("ab","c") != ("a","bc")
  Digest& i64(int64_t v) { return bytes(&v, sizeof v); }
  Digest& file(const std::string& path);     // the file's bytes; throws naming the file when unreadable
  Digest& tensor(const at::Tensor& t);       // dtype, shape and values (copied to CPU contiguous if needed)
  std::string hex() const;

 private:
  uint64_t a_ = 0x9E3779B97F4A7C15ull, b_ = 0xC2B2AE3D27D4EB4Full, n_ = 0;
  uint8_t tail_[8] = {};
  size_t tail_n_ = 0;
  void word(uint64_t w);
};

// Identity of a model for the cache: its config (HF JSON) and every named parameter and buffer.
std::string weights_identity(PhantomModelImpl& model);

struct RefKey {
  std::map<std::string, std::string> parts;
  std::string digest() const;
  std::string differences(const RefKey& other) const;  // "annotations, model": parts that differ or are missing
};

// The data-side parts of the key (everything but "model"): the annotation file's bytes, the parsed samples (so
// a seeded selection counts), the tokenizer file, the chat template and image tokens, preprocessing and precision.
// Every sample is parsed (rows that do not parse are left out of the key: the batch maker skips or fails them);
// `max_answers`, when given, gets the most answers (chosen + rejected) of a sample.
RefKey ref_data_key(const std::string& annotations, const data::SampleSet& samples,
                    const std::string& tokenizer_path, const data::SampleEncoder& enc, const data::TileOptions& tiles,
                    int64_t max_length, c10::ScalarType compute_dtype, int64_t* max_answers = nullptr);

struct RefTable {
  at::Tensor logps;  // (N, A) fp32 on CPU, NaN where a sample has no such answer (or was skipped)
  RefKey key;
};

void save_ref_table(const std::string& path, const RefTable& t);             // atomic
std::optional<RefTable> load_ref_table(const std::string& path);              // nullopt when absent

// The reference log-prob of every segment of a preference batch, from the table, by sample_index/seg_*.
// Throws when a sample has no entry (the cache does not cover this data).
at::Tensor lookup_ref_logps(const at::Tensor& table, const data::Batch& b);

using MakeBatch = std::function<data::Batch(const std::vector<size_t>&)>;

// One pass over samples [0, n) in order, `batch` at a time: every answer's summed log-prob under `model` (no
// grad, eval mode, in `autocast`). Samples the batch maker skips stay NaN. -> (n, max_answers) fp32 CPU.
at::Tensor compute_ref_table(PhantomModelImpl& model, int64_t n, int64_t max_answers, int64_t batch,
                             const MakeBatch& make, const c10::Device& device, const AutocastState& autocast);

struct RefSetup {
  std::string cache_path;
  std::string stage;             // for messages
  std::string reference;         // HF checkpoint of the reference; "" = the policy's current (starting) weights
  std::string resumed_identity;  // resuming mid-stage: the reference identity recorded at the stage start
  RefKey data_key;               // ref_data_key(...)
  int64_t num_samples = 0, max_answers = 0, batch = 1;
  MakeBatch make;
  c10::Device device = c10::Device(c10::kCPU);
  AutocastState autocast;
};

struct RefResult {
  at::Tensor table;
  std::string identity;  // the reference model's identity (recorded in checkpoints for resume)
  bool computed = false;  // false: served by the cache
};

// The cache when its key matches, else a fresh pass (and the cache written); see the header comment for resume.
RefResult reference_logps(PhantomModelImpl& policy, const RefSetup& s);

}  // namespace phantom::recipe
