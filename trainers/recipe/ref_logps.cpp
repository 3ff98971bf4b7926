#include "trainers/recipe/ref_logps.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "phantom/io/checkpoint.h"
#include "phantom/io/hf_config.h"
#include "phantom/io/safetensors.h"
#include "phantom/util/log.h"
#include "phantom/util/stop.h"
#include "trainers/recipe/losses.h"

namespace phantom::recipe {
namespace fs = std::filesystem;

namespace {
constexpr const char* kFormat = "phantom-ref-logps-v1";

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
uint64_t fmix(uint64_t k) {
  k ^= k >> 33, k *= 0xff51afd7ed558ccdull, k ^= k >> 33, k *= 0xc4ceb9fe1a85ec53ull, k ^= k >> 33;
  return k;
}
}  // namespace

// ---- digest ---------------------------------------------------------------------------------------------------

void Digest::word(uint64_t w) {
  a_ = rotl((a_ ^ w) * 0x87c37b91114253d5ull, 31) * 0x4cf5ad432745937full;
  b_ = rotl((b_ + w) * 0x4cf5ad432745937full, 27) * 0x87c37b91114253d5ull + 0x52dce729;
}

Digest& Digest::bytes(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  n_ += n;
  while (n > 0 && tail_n_ > 0 && tail_n_ < 8) tail_[tail_n_++] = *p++, --n;
  if (tail_n_ == 8) {
    uint64_t w;
    std::memcpy(&w, tail_, 8);
    word(w);
    tail_n_ = 0;
  }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    word(w);
  }
  while (n > 0) tail_[tail_n_++] = *p++, --n;
  return *this;
}

Digest& Digest::str(const std::string& s) {
  i64(static_cast<int64_t>(s.size()));
  return bytes(s.data(), s.size());
}

Digest& Digest::file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    bytes(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return *this;
}

Digest& Digest::tensor(const at::Tensor& t) {
  str(c10::toString(t.scalar_type()));
  i64(t.dim());
  for (auto s : t.sizes()) i64(s);
  auto c = t.detach().cpu().contiguous();
  return bytes(c.data_ptr(), c.numel() * c.element_size());
}

std::string Digest::hex() const {
  Digest d = *this;
  uint64_t last = 0;
  std::memcpy(&last, d.tail_, d.tail_n_);
  d.word(last ^ d.n_);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(fmix(d.a_ ^ d.b_)),
                static_cast<unsigned long long>(fmix(d.b_ + d.a_)));
  return buf;
}

std::string weights_identity(PhantomModelImpl& model) {
  Digest d;
  ModelConfig arch = model.cfg;  // generation settings do not change a log-prob: left out of the identity
  arch.llm.eos_token_ids.clear();
  arch.prompt = PromptConfig();
  d.str(phantom_config_json(arch).dump());
  d.i64(model.image_token_index);
  for (auto& p : model.named_parameters(true)) d.str(p.key()).tensor(p.value());
  for (auto& b : model.named_buffers(true)) d.str(b.key()).tensor(b.value());
  return d.hex();
}

// ---- key --------------------------------------------------------------------------------------------------------

std::string RefKey::digest() const {
  Digest d;
  for (auto& [k, v] : parts) d.str(k).str(v);
  return d.hex();
}

std::string RefKey::differences(const RefKey& other) const {
  std::string out;
  auto add = [&](const std::string& k) { out += (out.empty() ? "" : ", ") + k; };
  for (auto& [k, v] : parts) {
    auto it = other.parts.find(k);
    if (it == other.parts.end() || it->second != v) add(k);
  }
  for (auto& [k, v] : other.parts)
    if (!parts.count(k)) add(k);
  return out.empty() ? "none" : out;
}

RefKey ref_data_key(const std::string& annotations, const data::SampleSet& samples,
                    const std::string& tokenizer_path, const data::SampleEncoder& enc, const data::TileOptions& tiles,
                    int64_t max_length, c10::ScalarType compute_dtype, int64_t* max_answers) {
  RefKey k;
  k.parts["format"] = kFormat;
  k.parts["annotations"] = Digest().file(annotations).hex();
  Digest s;
  s.i64(static_cast<int64_t>(samples.size()));
  for (size_t i = 0; i < samples.size(); ++i) {
    data::Sample x;
    try {
      x = samples.at(i);
    } catch (const data::DataError&) {
      continue;
    }
    if (max_answers) *max_answers = std::max<int64_t>(*max_answers, 1 + static_cast<int64_t>(x.rejected.size()));
    s.str(x.id).i64(static_cast<int64_t>(x.images.size()));
    for (auto& i : x.images) s.str(i);
    s.i64(static_cast<int64_t>(x.turns.size()));
    for (auto& t : x.turns) s.i64(t.from_user).str(t.text);
    s.i64(static_cast<int64_t>(x.context.size()));
    for (auto& t : x.context) s.i64(t.from_user).str(t.text);
    s.str(x.question).str(x.chosen).i64(static_cast<int64_t>(x.rejected.size()));
    for (auto& r : x.rejected) s.str(r);
  }
  k.parts["samples"] = s.hex();
  k.parts["tokenizer"] = Digest().file(tokenizer_path).hex();
  const auto& t = enc.chat_template();
  const auto& im = enc.image_tokens();
  k.parts["template"] = Digest()
                            .str(t.name).str(t.user_start).str(t.user_end).str(t.assistant_start).str(t.assistant_end)
                            .i64(im.img_start).i64(im.img_context).i64(im.img_end).i64(im.tokens_per_tile)
                            .str(enc.image_placement()).str(enc.multi_image()).str(enc.answer_tokenization())
                            .hex();
  k.parts["preprocess"] = Digest().i64(tiles.tile).i64(tiles.min_num).i64(tiles.max_num).i64(tiles.use_thumbnail)
                              .i64(max_length).hex();
  k.parts["precision"] = c10::toString(compute_dtype);
  return k;
}

// ---- file -------------------------------------------------------------------------------------------------------

void save_ref_table(const std::string& path, const RefTable& t) {
  st::Metadata meta;
  meta["key"] = t.key.digest();
  for (auto& [k, v] : t.key.parts) meta["key." + k] = v;
  if (!fs::path(path).parent_path().empty()) fs::create_directories(fs::path(path).parent_path());
  st::save(path, {{"logps", t.logps.to(torch::kFloat).contiguous()}}, meta);
}

std::optional<RefTable> load_ref_table(const std::string& path) {
  if (!fs::exists(path)) return std::nullopt;
  st::File f(path);
  RefTable t;
  for (auto& [k, v] : f.metadata())
    if (k.rfind("key.", 0) == 0) t.key.parts[k.substr(4)] = v;
  auto it = f.metadata().find("key");
  if (it == f.metadata().end() || it->second != t.key.digest() || !f.contains("logps"))
    throw std::runtime_error(path + ": not a reference log-prob cache (or a damaged one): key metadata inconsistent");
  t.logps = f.get("logps").clone();
  if (t.logps.dim() != 2 || t.logps.scalar_type() != torch::kFloat)
    throw std::runtime_error(path + ": \"logps\" must be a 2-D F32 tensor");
  return t;
}

at::Tensor lookup_ref_logps(const at::Tensor& table, const data::Batch& b) {
  TORCH_CHECK(b.sample_index.defined(), "reference log-probs: the batch carries no sample indices");
  auto q = b.seg_question.cpu(), a = b.seg_answer.cpu();
  auto n = b.sample_index.cpu().index_select(0, q);
  if (n.numel() && (n.max().item<int64_t>() >= table.size(0) || a.max().item<int64_t>() >= table.size(1)))
    throw std::runtime_error("reference log-probs: the cache has " + std::to_string(table.size(0)) + " samples x " +
                             std::to_string(table.size(1)) + " answers; the batch asks for more (stale cache?)");
  auto out = table.index({n, a});
  if (out.isnan().any().item<bool>())
    throw std::runtime_error("reference log-probs: a sample of the batch has no cached value (stale cache?)");
  return out;
}

// ---- the pass ---------------------------------------------------------------------------------------------------

at::Tensor compute_ref_table(PhantomModelImpl& model, int64_t n, int64_t max_answers, int64_t batch,
                             const MakeBatch& make, const c10::Device& device, const AutocastState& autocast) {
  torch::NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  auto table = torch::full({n, max_answers}, std::numeric_limits<float>::quiet_NaN(), torch::kFloat);
  auto acc = table.accessor<float, 2>();
  const int64_t n_batches = (n + batch - 1) / batch;
  log::Progress bar("reference log-probs", n_batches);
  for (int64_t bi = 0; bi < n_batches; ++bi) {
    std::vector<size_t> idx;
    for (int64_t i = bi * batch; i < std::min(n, (bi + 1) * batch); ++i) idx.push_back(static_cast<size_t>(i));
    data::Batch b = make(idx);
    if (b.num_questions == 0) continue;  // every sample skipped (data.on_error=skip): they stay NaN
    auto mv = [&](at::Tensor& t) {
      if (t.defined()) t = t.to(device);
    };
    mv(b.input_ids), mv(b.attention_mask), mv(b.positions), mv(b.pixel_values);
    at::Tensor seg;
    {
      AutocastScope scope(autocast);
      seg = segment_logps(model, b);
    }
    seg = seg.to(torch::kFloat).cpu();
    auto q = b.seg_question.cpu(), a = b.seg_answer.cpu(), si = b.sample_index.cpu();
    for (int64_t s = 0; s < seg.size(0); ++s)
      acc[si[q[s].item<int64_t>()].item<int64_t>()][a[s].item<int64_t>()] = seg[s].item<float>();
    bar.update(bi + 1);
    if (util::stop_requested() && bi + 1 < n_batches) {
      bar.finish();
      if (was_training) model.train();
      throw util::Stopped(fmt::format("reference log-probs: stopped by a signal after {} of {} batches (nothing cached; "
                                      "--resume computes them again)", bi + 1, n_batches));
    }
  }
  bar.finish();
  if (was_training) model.train();
  return table;
}

RefResult reference_logps(PhantomModelImpl& policy, const RefSetup& s) {
  const bool resuming = !s.resumed_identity.empty();
  PhantomModel loaded{nullptr};
  auto load_reference = [&]() -> PhantomModelImpl& {
    if (s.reference.empty()) return policy;
    if (!loaded) {
      loaded = load_phantom(s.reference, policy.cfg);
      loaded->image_token_index = policy.image_token_index;
      loaded->to(s.device);
    }
    return *loaded;
  };
  RefResult r;
  r.identity = resuming ? s.resumed_identity : weights_identity(load_reference());
  RefKey key = s.data_key;
  key.parts["model"] = r.identity;

  auto cached = load_ref_table(s.cache_path);
  if (cached && cached->key.digest() == key.digest()) {
    log::info(fmt::format("stage {}: reference log-probs from the cache {} (key {})", s.stage, s.cache_path,
                          key.digest()));
    r.table = cached->logps;
    return r;
  }
  const std::string why = cached ? "is stale (it differs in: " + cached->key.differences(key) + ")" : "is missing";
  if (resuming) {
    if (s.reference.empty())
      throw std::runtime_error("stage " + s.stage + ": the reference log-prob cache " + s.cache_path + " " + why +
                               "; resuming mid-stage, the stage's starting weights (the reference) are gone. Restore "
                               "the cache, set the stage's `reference:` to a checkpoint of those weights, or restart "
                               "the stage without --resume");
    if (weights_identity(load_reference()) != s.resumed_identity)
      throw std::runtime_error("stage " + s.stage + ": the reference checkpoint " + s.reference +
                               " changed since the stage started (its weights differ from the ones recorded in the "
                               "checkpoint); the cache " + s.cache_path + " " + why);
  }
  if (cached) log::warn(fmt::format("stage {}: the reference log-prob cache {} {}: recomputing", s.stage, s.cache_path, why));
  log::info(fmt::format("stage {}: computing reference log-probs of {} samples ({})", s.stage, s.num_samples,
                        s.reference.empty() ? "the stage's starting weights" : s.reference));
  RefTable t;
  t.key = key;
  t.logps = compute_ref_table(load_reference(), s.num_samples, s.max_answers, s.batch, s.make, s.device, s.autocast);
  save_ref_table(s.cache_path, t);
  log::info(fmt::format("stage {}: reference log-probs cached in {} (key {})", s.stage, s.cache_path, key.digest()));
  r.table = t.logps;
  r.computed = true;
  return r;
}

}  // namespace phantom::recipe
