// Gradient buckets summed over ranks during backward (buckets.h).
#include "trainers/distributed/buckets.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <chrono>

#include "phantom/util/logf.h"

namespace phantom::distributed {

// A group of tensors whose gradients are summed together. The flat buffer holds segments: one per owner rank
// (reduced to that owner), else one for everything (all-reduced). A segment is its tensors' elements, then one
// flag per tensor ("this rank has a gradient"), so a tensor no rank touched keeps an undefined gradient, as in one
// process.
struct GradientBuckets::Bucket {
  struct Segment {
    int owner;  // -1: all-reduced
    int64_t begin, numel;
  };
  std::vector<size_t> params;
  std::vector<int64_t> offset;   // of each tensor's elements in flat
  std::vector<int64_t> flag_at;  // of each tensor's flag in flat
  std::vector<Segment> segments;
  int64_t numel = 0;             // elements of the tensors (the bucket_mb cap)
  int64_t size = 0;              // flat's length: elements and flags
  at::TensorOptions options;
  at::Tensor flat;               // persistent without owners; with owners allocated at launch, freed once unpacked
  at::Tensor flag_index;         // flag_at as a tensor on flat's device
  std::vector<bool> ready;
  size_t pending = 0;
  bool launched = false;         // this backward (cleared by finish_backward only: a second gradient is an error)
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
};

namespace {
using Clock = std::chrono::steady_clock;

struct GradReady : torch::autograd::PostAccumulateGradHook {
  std::function<void()> fn;
  explicit GradReady(std::function<void()> f) : fn(std::move(f)) {}
  void operator()(const torch::autograd::Variable&) override { fn(); }
};

at::ScalarType reduce_dtype(at::ScalarType t, bool fp32) {
  return fp32 && (t == at::kBFloat16 || t == at::kHalf) ? at::kFloat : t;
}
int64_t nbytes(const at::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }

// With owners, a new bucket first waits for the oldest beyond this many, so a slow reduction bounds the buffers
// (about 2 x bucket_mb) instead of letting them grow to the size of the gradients.
constexpr size_t kInFlight = 2;
}  // namespace

GradientBuckets::GradientBuckets(World& w, std::vector<at::Tensor> params, std::vector<std::string> names,
                                 const DistributedConfig& dc, std::vector<int> owner)
    : w_(w), params_(std::move(params)), names_(std::move(names)), dc_(dc), owner_(std::move(owner)) {
  const size_t n = params_.size();
  // Buckets in reverse registration order, about the order in which backward produces the gradients.
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(dc_.bucket_mb * 1024 * 1024));
  bucket_of_.assign(n, 0);
  for (size_t k = n; k-- > 0;) {
    const auto& p = params_[k];
    const auto dt = reduce_dtype(p.scalar_type(), dc_.fp32_reduce);
    const bool fresh = buckets_.empty() || buckets_.back()->options.dtype() != dt ||
                       (buckets_.back()->numel + p.numel()) * static_cast<int64_t>(c10::elementSize(dt)) > cap;
    if (fresh) {
      buckets_.push_back(std::make_unique<Bucket>());
      buckets_.back()->options = torch::TensorOptions().dtype(dt).device(p.device());
    }
    auto& b = *buckets_.back();
    b.params.push_back(k);
    b.numel += p.numel();
    bucket_of_[k] = buckets_.size() - 1;
  }
  const bool owned = !owner_.empty();
  for (auto& bp : buckets_) {
    auto& b = *bp;
    const size_t m = b.params.size();
    b.offset.assign(m, 0), b.flag_at.assign(m, 0);
    // Segments: with owners, each owner's tensors together (in rank order); else one segment.
    for (int r = owned ? 0 : -1; r < (owned ? w_.size() : 0); ++r) {
      std::vector<size_t> js;
      for (size_t j = 0; j < m; ++j)
        if (r < 0 || owner_[b.params[j]] == r) js.push_back(j);
      if (js.empty()) continue;
      const int64_t begin = b.size;
      for (size_t j : js) b.offset[j] = b.size, b.size += params_[b.params[j]].numel();
      for (size_t j : js) b.flag_at[j] = b.size++;
      b.segments.push_back({r, begin, b.size - begin});
    }
    b.flag_index = torch::tensor(b.flag_at, torch::kLong).to(b.options.device());
    if (!owned) b.flat = torch::zeros({b.size}, b.options);
    b.ready.assign(m, false);
    b.pending = m;
  }
  if (dc_.overlap)
    for (size_t k = 0; k < n; ++k)
      torch::autograd::impl::set_post_acc_grad_hooks(params_[k], std::make_unique<GradReady>([this, k] { on_grad_ready(k); }));
}

GradientBuckets::~GradientBuckets() {
  if (dc_.overlap)
    for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

bool GradientBuckets::owned_elsewhere(size_t k) const { return !owner_.empty() && owner_[k] != w_.rank(); }

void GradientBuckets::on_grad_ready(size_t k) {
  if (!syncing_) return;  // an accumulation micro-batch: gradients stay local
  std::lock_guard<std::mutex> lock(mu_);
  auto& b = *buckets_[bucket_of_[k]];
  const size_t j = static_cast<size_t>(std::find(b.params.begin(), b.params.end(), k) - b.params.begin());
  if (b.launched || b.ready[j])
    throw std::runtime_error("distributed: parameter " + names_[k] +
                             " received its gradient twice in one backward; set distributed.overlap: false");
  b.ready[j] = true;
  if (--b.pending == 0) launch_ready();
}

void GradientBuckets::launch_ready() {
  const bool owned = !owner_.empty();
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) {
    if (owned)
      while (next_launch_ - next_reap_ >= kInFlight) unpack(*buckets_[next_reap_++]);
    launch(*buckets_[next_launch_++]);
  }
  if (owned) reap(false);  // free the buffers of the buckets already reduced
}

void GradientBuckets::launch(Bucket& b) {
  torch::NoGradGuard ng;
  if (!b.flat.defined()) b.flat = torch::empty({b.size}, b.options);
  for (size_t j = 0; j < b.params.size(); ++j) {
    auto& p = params_[b.params[j]];
    auto slot = b.flat.narrow(0, b.offset[j], p.numel());
    const bool has = p.grad().defined();
    if (has) slot.copy_(p.grad().reshape({-1}));
    else slot.zero_();
    b.flat[b.flag_at[j]].fill_(has ? 1 : 0);
    // The owner alone needs the sum; this rank's share is in the bucket now.
    if (has && owned_elsewhere(b.params[j])) p.mutable_grad().reset();
  }
  for (auto& s : b.segments) {
    auto part = s.owner < 0 ? b.flat : b.flat.narrow(0, s.begin, s.numel);
    b.works.push_back(s.owner < 0 ? w_.all_reduce_async(part) : w_.reduce_async(part, s.owner));
  }
  b.launched = true;
  peak_held_ = std::max(peak_held_, held_bytes());
}

void GradientBuckets::unpack(Bucket& b) {
  const bool owned = !owner_.empty();
  for (auto& work : b.works) w_.wait(work, owned ? "gradient reduce" : "gradient all-reduce");
  b.works.clear();
  torch::NoGradGuard ng;
  const auto flags = b.flat.index_select(0, b.flag_index).to(at::kFloat).cpu();
  const float* has = flags.data_ptr<float>();
  for (size_t j = 0; j < b.params.size(); ++j) {
    auto& p = params_[b.params[j]];
    if (owned_elsewhere(b.params[j])) {  // another rank's tensor: its sum is not here
      if (p.grad().defined()) p.mutable_grad().reset();
      continue;
    }
    if (has[j] < 0.5f) {
      p.mutable_grad().reset();
      continue;
    }
    auto sum = b.flat.narrow(0, b.offset[j], p.numel()).view(p.sizes());
    if (p.grad().defined()) p.mutable_grad().copy_(sum);
    else p.mutable_grad() = sum.to(p.scalar_type()).clone();
  }
  if (owned) b.flat = at::Tensor();
}

void GradientBuckets::reap(bool block) {
  for (; next_reap_ < next_launch_; ++next_reap_) {
    auto& b = *buckets_[next_reap_];
    if (!block)
      for (auto& work : b.works)
        if (!work->isCompleted()) return;
    unpack(b);
  }
}

void GradientBuckets::finish_backward() {
  const auto t0 = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  const bool owned = !owner_.empty();
  overlapped_ = static_cast<int64_t>(next_launch_);
  while (next_launch_ < buckets_.size()) {  // unused tensors, or overlap off
    if (owned)
      while (next_launch_ - next_reap_ >= kInFlight) unpack(*buckets_[next_reap_++]);
    launch(*buckets_[next_launch_++]);
  }
  reap(true);
  for (auto& b : buckets_) {
    b->launched = false, b->pending = b->params.size();
    std::fill(b->ready.begin(), b->ready.end(), false);
  }
  next_launch_ = next_reap_ = 0;
  syncing_ = false;
  sync_ms_ = 1e3 * std::chrono::duration<double>(Clock::now() - t0).count();
  if (!reported_) {
    // Measured once: what each rank holds after the reduction (with owners: its own tensors' gradients).
    reported_ = true;
    const int n = w_.size();
    std::vector<int64_t> v(static_cast<size_t>(2 * n), 0);
    v[static_cast<size_t>(w_.rank())] = held_bytes();
    v[static_cast<size_t>(n + w_.rank())] = std::max(peak_held_, held_bytes());
    sum_over_ranks(&w_, v);
    const double mb = 1024.0 * 1024.0;
    std::string s = "distributed: gradients and bucket buffers held per rank after the first reduction:";
    for (int r = 0; r < n; ++r) s += fmt::format(" {}={:.2f} MB", r, static_cast<double>(v[static_cast<size_t>(r)]) / mb);
    if (owned) {
      s += "; at most during that backward:";
      for (int r = 0; r < n; ++r) s += fmt::format(" {}={:.2f} MB", r, static_cast<double>(v[static_cast<size_t>(n + r)]) / mb);
    }
    log::info("{}", s);
  }
  peak_held_ = 0;
}

int64_t GradientBuckets::buffer_bytes() const {
  int64_t bytes = 0;
  for (auto& b : buckets_) bytes += nbytes(b->flat);
  return bytes;
}

int64_t GradientBuckets::held_bytes() const {
  int64_t bytes = buffer_bytes();
  for (auto& p : params_) bytes += nbytes(p.grad());
  return bytes;
}

std::string GradientBuckets::describe() const {
  return fmt::format("gradients summed in {} bucket(s){}{}", buckets_.size(),
                     dc_.overlap ? " during backward" : " after backward",
                     owner_.empty() ? "" : ", each reduced to its tensors' owners");
}

}  // namespace phantom::distributed
