// Data parallel training: process group, failure protocol, bucketed gradient all-reduce, ZeRO-1/2 (distributed.h).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1  // the wheel's libtorch_cpu has Gloo; its header needs the macro (and Debian's gloo headers)
#endif
#include "trainers/distributed/distributed.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>

#include "phantom/model/runtime.h"
#include "phantom/util/logf.h"
#include "trainers/recipe/train_state.h"

namespace phantom::train {

// trainers/distributed/nccl.cpp (compiled with CUDA headers when LibTorch has CUDA).
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout, int device_index);

namespace {
using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

World* g_world = nullptr;  // one process group per process, like torch.distributed's default group

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

int env_int(const char* name, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v) throw std::runtime_error(std::string("distributed launch: WORLD_SIZE is set but ") + name +
                                   " is not (start with torchrun, see docs/distributed.md)");
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || x < lo || x > hi)
    throw std::runtime_error(std::string("distributed launch: ") + name + "='" + v + "' is not an integer in [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(x);
}

// Upper 62 bits of FNV-1a: equal key lists hash equal (negation below stays in range).
int64_t keys_hash(const std::vector<std::string>& keys) {
  uint64_t h = 1469598103934665603ULL;
  for (auto& k : keys) {
    for (unsigned char c : k) h = (h ^ c) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
  }
  return static_cast<int64_t>(h >> 2);
}

}  // namespace

std::optional<LaunchEnv> launch_env() {
  if (!std::getenv("WORLD_SIZE")) return std::nullopt;
  LaunchEnv e;
  e.world = env_int("WORLD_SIZE", 1, 1 << 20);
  e.rank = env_int("RANK", 0, e.world - 1);
  e.local_rank = env_int("LOCAL_RANK", 0, e.world - 1);
  e.master_port = env_int("MASTER_PORT", 1, 65535);
  const char* addr = std::getenv("MASTER_ADDR");
  if (!addr || !*addr) throw std::runtime_error("distributed launch: WORLD_SIZE is set but MASTER_ADDR is not");
  e.master_addr = addr;
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && std::string(agent) == "True";
  if (const char* a = std::getenv("TORCHELASTIC_RESTART_COUNT")) e.attempt = a;
  return e;
}

// ---- World ---------------------------------------------------------------------------------------------------------

World* World::current() { return g_world; }

World* World::init(const DistributedConfig& cfg, const std::string& device) {
  if (g_world) return g_world;
  auto env = launch_env();
  if (!env || env->world == 1) return nullptr;
  // Never destroyed: a process group torn down while a peer is gone can block; the process exits instead.
  g_world = new World(*env, cfg, device);
  std::atexit([] {
    if (g_world && g_world->heartbeat_.joinable()) g_world->stop_heartbeat_ = true, g_world->heartbeat_.join();
  });
  return g_world;
}

World::World(const LaunchEnv& env, const DistributedConfig& cfg, const std::string& device) : env_(env), cfg_(cfg) {
  device_ = pick_device(device, env.local_rank);
  backend_name_ = cfg.backend == "auto" ? (device_.is_cuda() ? "nccl" : "gloo") : cfg.backend;
  if (backend_name_ == "nccl" && !device_.is_cuda())
    throw config::ConfigError("config error: distributed.backend: nccl needs CUDA tensors, but run.device is " + device_.str());
  if (backend_name_ == "gloo" && device_.is_cuda())
    throw config::ConfigError("config error: distributed.backend: gloo is for CPU tensors; use nccl (or auto) on CUDA");
  const auto timeout = ms(static_cast<int64_t>(cfg.timeout_s * 1000));

  // torchrun's agent hosts a TCPStore at MASTER_ADDR:MASTER_PORT (it outlives failing ranks); started by hand,
  // rank 0 hosts it.
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = !env.agent_store && env.rank == 0;
  so.numWorkers = static_cast<size_t>(env.world);
  so.waitWorkers = false;
  so.timeout = timeout;
  auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  store_ = c10::make_intrusive<c10d::PrefixStore>("phantom/" + env.attempt, tcp);

  if (backend_name_ == "gloo") {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    opts->devices.push_back(ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
    pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store_), env.rank,
                                                      env.world, opts);
  } else {
    pg_ = make_nccl_backend(c10::make_intrusive<c10d::PrefixStore>("nccl", store_), env.rank, env.world, timeout,
                            device_.index());
  }
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
  // Every rank connected: a collective proves it (and fails with a clear message if one never comes).
  std::vector<int64_t> one{1};
  sum_over_ranks(this, one);
  log::info("distributed: rank {} of {} (local rank {}), backend {}, device {}, store {}:{}{}", env.rank, env.world,
            env.local_rank, backend_name_, device_.str(), env.master_addr, env.master_port,
            env.agent_store ? " (torchrun agent)" : "");
}

World::~World() {
  stop_heartbeat_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
}

// "beat/<rank>" = "<beats> <collectives entered>": a killed rank stops beating, a stuck one stops advancing.
void World::heartbeat_loop() {
  int64_t beat = 0;
  const std::string key = "beat/" + std::to_string(env_.rank);
  while (!stop_heartbeat_) {
    try {
      store_->set(key, std::to_string(beat++) + " " + std::to_string(collectives_.load()));
    } catch (...) {
      return;  // the store is gone (its host exited): nothing left to tell
    }
    for (int i = 0; i < 10 && !stop_heartbeat_; ++i) std::this_thread::sleep_for(ms(50));
  }
}

std::string World::diagnose(const std::string& what, const std::string& error) {
  std::string& diagnosis = diagnosis_;  // the first failure explains the later ones
  if (!diagnosis.empty()) return diagnosis;
  const int me = env_.rank, n = env_.world;
  auto key = [](const char* k, int r) { return std::string(k) + "/" + std::to_string(r); };
  auto value = [&](const std::string& k) {
    auto v = store_->get(k);
    return std::string(v.begin(), v.end());
  };
  auto beats = [&] {
    std::vector<std::string> b(static_cast<size_t>(n));
    for (int r = 0; r < n; ++r)
      if (store_->check({key("beat", r)})) b[static_cast<size_t>(r)] = value(key("beat", r));
    return b;
  };
  try {
    store_->set(key("down", me), first_line(error));
    const auto b0 = beats();
    const auto t0 = Clock::now();
    const double grace = std::min(cfg_.timeout_s, 10.0);
    std::vector<std::string> b1 = b0;
    while (diagnosis.empty() && since(t0) < grace) {
      for (int r = 0; r < n && diagnosis.empty(); ++r)
        if (r != me && store_->check({key("error", r)})) diagnosis = "rank " + std::to_string(r) + " failed: " + value(key("error", r));
      if (diagnosis.empty() && since(t0) >= 3.0) {
        b1 = beats();
        std::string silent;
        for (int r = 0; r < n; ++r)
          if (r != me && b1[static_cast<size_t>(r)] == b0[static_cast<size_t>(r)] && !store_->check({key("down", r)}))
            silent += (silent.empty() ? "" : ", ") + std::to_string(r);
        if (!silent.empty())
          diagnosis = "rank " + silent + " failed: its heartbeat stopped (killed or crashed without a message; see the "
                      "launcher's log)";
      }
      if (diagnosis.empty()) std::this_thread::sleep_for(ms(200));
    }
    if (diagnosis.empty()) {  // every rank is alive: the one that entered the fewest collectives is stuck
      int64_t lowest = INT64_MAX;
      int slow = -1;
      for (int r = 0; r < n; ++r) {
        if (r == me || store_->check({key("down", r)}) || b1[static_cast<size_t>(r)].empty()) continue;
        const auto& s = b1[static_cast<size_t>(r)];
        const int64_t entered = std::stoll(s.substr(s.find(' ') + 1));
        if (entered < lowest) lowest = entered, slow = r;
      }
      if (slow >= 0)
        diagnosis = "rank " + std::to_string(slow) + " failed: it stopped responding (" + std::to_string(lowest) +
                    " collectives entered, rank " + std::to_string(me) + " is at " + std::to_string(collectives_.load()) +
                    "; distributed.timeout_s " + fmt::format("{:g}", cfg_.timeout_s) + ")";
    }
  } catch (const std::exception& e) {
    diagnosis = "the store at " + env_.master_addr + ":" + std::to_string(env_.master_port) +
                " is unreachable (its host, rank 0 or the launcher, probably failed): " + first_line(e.what());
  }
  if (diagnosis.empty()) diagnosis = what + " failed on rank " + std::to_string(me) + ": " + first_line(error);
  return diagnosis;
}

template <class F>
c10::intrusive_ptr<c10d::Work> World::guarded(const char* what, F&& launch) {
  ++collectives_;
  try {
    return launch();
  } catch (const std::exception& e) {
    throw CollectiveError(diagnose(what, e.what()));
  }
}

void World::wait(const c10::intrusive_ptr<c10d::Work>& w, const char* what) {
  try {
    w->wait();
  } catch (const std::exception& e) {
    throw CollectiveError(diagnose(what, e.what()));
  }
}

c10::intrusive_ptr<c10d::Work> World::all_reduce_async(at::Tensor& t) {
  return guarded("all-reduce", [&] {
    std::vector<at::Tensor> v{t};
    return pg_->allreduce(v);
  });
}

c10::intrusive_ptr<c10d::Work> World::reduce_async(at::Tensor& t, int root) {
  return guarded("reduce", [&] {
    std::vector<at::Tensor> v{t};
    c10d::ReduceOptions o;
    o.rootRank = root;
    return pg_->reduce(v, o);
  });
}

void World::all_reduce(at::Tensor& t, c10d::ReduceOp op) {
  auto w = guarded("all-reduce", [&] {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = op;
    return pg_->allreduce(v, o);
  });
  wait(w, "all-reduce");
}

void World::broadcast(at::Tensor& t, int root) {
  auto w = guarded("broadcast", [&] {
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    return pg_->broadcast(v, o);
  });
  wait(w, "broadcast");
}

void World::send(at::Tensor& t, int dst) {
  auto w = guarded("send", [&] {
    std::vector<at::Tensor> v{t};
    return pg_->send(v, dst, 0);
  });
  wait(w, "send");
}

void World::recv(at::Tensor& t, int src) {
  auto w = guarded("recv", [&] {
    std::vector<at::Tensor> v{t};
    return pg_->recv(v, src, 0);
  });
  wait(w, "recv");
}

void World::fail(const std::string& message, bool collective_error) {
  std::string line = first_line(message);
  if (!collective_error) {
    try {
      store_->set("error/" + std::to_string(env_.rank), line);
    } catch (...) {
    }
    line = "rank " + std::to_string(env_.rank) + ": " + line;
  }
  std::fprintf(stderr, "error: %s\n", line.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(1);
}

void fail_if_distributed(const std::exception& e) {
  World* w = World::current();
  if (!w) return;
  // A collective that failed inside backward reaches us re-wrapped by autograd: the diagnosis is what matters.
  const std::string& d = w->diagnosis();
  const bool collective = dynamic_cast<const CollectiveError*>(&e) != nullptr ||
                          (!d.empty() && std::string(e.what()).find(d) != std::string::npos);
  w->fail(collective ? d : e.what(), collective);
}

// ---- sums over ranks -------------------------------------------------------------------------------------------------

void sum_over_ranks(World* w, std::vector<int64_t>& values) {
  if (!w || values.empty()) return;
  auto t = torch::tensor(values, torch::kInt64).to(w->device());
  w->all_reduce(t);
  t = t.cpu();
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<int64_t>();
}

void sum_over_ranks(World* w, std::map<std::string, double>& sums) {
  if (!w) return;
  std::vector<std::string> keys;
  for (auto& kv : sums) keys.push_back(kv.first);
  // Same keys everywhere (the common case)? Else align on rank 0's keys (a rank with no validation batch).
  const int64_t h = keys_hash(keys);
  auto agree = torch::tensor(std::vector<int64_t>{h, -h}, torch::kInt64).to(w->device());
  w->all_reduce(agree, c10d::ReduceOp::MAX);
  agree = agree.cpu();
  if (agree[0].item<int64_t>() != -agree[1].item<int64_t>()) {
    std::string joined;
    for (auto& k : keys) joined += k + "\n";
    auto len = torch::tensor(std::vector<int64_t>{static_cast<int64_t>(joined.size())}, torch::kInt64).to(w->device());
    w->broadcast(len, 0);
    auto bytes = torch::zeros({len.cpu().item<int64_t>()}, torch::kUInt8);
    if (w->rank() == 0) std::memcpy(bytes.data_ptr(), joined.data(), joined.size());
    bytes = bytes.to(w->device());
    w->broadcast(bytes, 0);
    bytes = bytes.cpu();
    const std::string root(reinterpret_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(bytes.numel()));
    keys.clear();
    for (size_t b = 0, e; (e = root.find('\n', b)) != std::string::npos; b = e + 1) keys.push_back(root.substr(b, e - b));
    for (auto& kv : sums)
      if (std::find(keys.begin(), keys.end(), kv.first) == keys.end())
        throw std::runtime_error("metric '" + kv.first + "' of rank " + std::to_string(w->rank()) + " is unknown to rank 0");
  }
  std::vector<double> v;
  for (auto& k : keys) v.push_back(sums.count(k) ? sums.at(k) : 0.0);
  auto t = torch::tensor(v, torch::kDouble).to(w->device());
  w->all_reduce(t);
  t = t.cpu();
  sums.clear();
  for (size_t i = 0; i < keys.size(); ++i) sums[keys[i]] = t[static_cast<int64_t>(i)].item<double>();
}

std::pair<int64_t, int64_t> rank_share(int64_t begin, int64_t end, int rank, int world) {
  const int64_t per = (end - begin + world - 1) / world;
  return {std::min(end, begin + rank * per), std::min(end, begin + (rank + 1) * per)};
}

void broadcast_module(World* w, torch::nn::Module& m) {
  if (!w) return;
  torch::NoGradGuard ng;
  for (auto& p : m.parameters()) {
    auto t = p.data();
    w->broadcast(t, 0);
  }
  for (auto& b : m.buffers()) {
    if (!b.is_contiguous()) continue;
    auto t = b.data();
    w->broadcast(t, 0);
  }
}

// ---- StageOptimizer -------------------------------------------------------------------------------------------------

// A group of trainable tensors whose gradients are summed together. The flat buffer holds segments: one per owner
// rank under ZeRO-2 (reduced to that owner), else one for everything (all-reduced). A segment is its tensors'
// elements, then one flag per tensor ("this rank has a gradient"), so a tensor no rank touched keeps an undefined
// gradient, as in one process.
struct StageOptimizer::Bucket {
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
  at::Tensor flat;               // persistent; ZeRO-2: allocated at launch, freed once written back
  at::Tensor flag_index;         // flag_at as a tensor on flat's device
  std::vector<bool> ready;
  size_t pending = 0;
  bool launched = false;         // this backward (cleared by finish_backward only: a second gradient is an error)
  bool unpacked = false;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
};

namespace {
struct GradReady : torch::autograd::PostAccumulateGradHook {
  std::function<void()> fn;
  explicit GradReady(std::function<void()> f) : fn(std::move(f)) {}
  void operator()(const torch::autograd::Variable&) override { fn(); }
};

at::ScalarType reduce_dtype(at::ScalarType t, bool fp32) {
  return fp32 && (t == at::kBFloat16 || t == at::kHalf) ? at::kFloat : t;
}
int64_t nbytes(const at::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }
}  // namespace

StageOptimizer::StageOptimizer(World* w, const Trainable& t, const OptimConfig& oc, const DistributedConfig& dc)
    : w_(w), all_(t), oc_(oc), dc_(dc), zero_(w ? dc.zero_level() : 0) {
  const size_t n = all_.params.size();
  if (zero_ == 0) {
    opt_ = make_adamw(all_, oc_);
  } else {
    // Partition: largest tensors first, each to the rank holding the fewest elements so far (same on every rank).
    owner_.assign(n, 0);
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return all_.params[a].numel() > all_.params[b].numel(); });
    std::vector<int64_t> load(static_cast<size_t>(w_->size()), 0);
    for (size_t i : order) {
      const auto r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
      owner_[i] = static_cast<int>(r), load[r] += all_.params[i].numel();
    }
    Trainable mine;
    for (size_t i = 0; i < n; ++i)
      if (owner_[i] == w_->rank()) mine.names.push_back(all_.names[i]), mine.params.push_back(all_.params[i]), mine.count += all_.params[i].numel();
    opt_ = make_adamw(mine, oc_);
  }
  if (!w_) return;

  // Buckets in reverse registration order, about the order in which backward produces the gradients.
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(dc_.bucket_mb * 1024 * 1024));
  bucket_of_.assign(n, 0);
  for (size_t k = n; k-- > 0;) {
    const auto& p = all_.params[k];
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
  for (auto& bp : buckets_) {
    auto& b = *bp;
    const size_t m = b.params.size();
    b.offset.assign(m, 0), b.flag_at.assign(m, 0);
    // Segments: ZeRO-2, each owner's tensors together (in rank order); else one segment.
    for (int r = (zero_ == 2 ? 0 : -1); r < (zero_ == 2 ? w_->size() : 0); ++r) {
      std::vector<size_t> js;
      for (size_t j = 0; j < m; ++j)
        if (r < 0 || owner_[b.params[j]] == r) js.push_back(j);
      if (js.empty()) continue;
      const int64_t begin = b.size;
      for (size_t j : js) b.offset[j] = b.size, b.size += all_.params[b.params[j]].numel();
      for (size_t j : js) b.flag_at[j] = b.size++;
      b.segments.push_back({r, begin, b.size - begin});
    }
    b.flag_index = torch::tensor(b.flag_at, torch::kLong).to(b.options.device());
    if (zero_ < 2) b.flat = torch::zeros({b.size}, b.options);
    b.ready.assign(m, false);
    b.pending = m;
  }
  if (dc_.overlap)
    for (size_t k = 0; k < n; ++k)
      torch::autograd::impl::set_post_acc_grad_hooks(all_.params[k], std::make_unique<GradReady>([this, k] { on_grad_ready(k); }));
}

StageOptimizer::~StageOptimizer() {
  if (w_ && dc_.overlap)
    for (auto& p : all_.params) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void StageOptimizer::sync_next_backward(bool on) { syncing_ = on && w_; }

void StageOptimizer::on_grad_ready(size_t k) {
  if (!syncing_) return;  // an accumulation micro-batch: gradients stay local
  std::lock_guard<std::mutex> lock(mu_);
  auto& b = *buckets_[bucket_of_[k]];
  const size_t j = static_cast<size_t>(std::find(b.params.begin(), b.params.end(), k) - b.params.begin());
  if (b.launched || b.ready[j])
    throw std::runtime_error("distributed: parameter " + all_.names[k] +
                             " received its gradient twice in one backward; set distributed.overlap: false");
  b.ready[j] = true;
  if (--b.pending == 0) launch_ready_buckets();
}

// Buckets start strictly in index order on every rank, so the collectives match whatever order gradients come in.
// ZeRO-2 keeps at most this many bucket buffers in flight: a new bucket first waits for the oldest, so a slow
// reduction bounds the buffers (about 2 x bucket_mb) instead of letting them grow to the size of the gradients.
constexpr size_t kZero2InFlight = 2;

void StageOptimizer::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) {
    if (zero_ == 2)
      while (next_launch_ - next_reap_ >= kZero2InFlight) unpack(*buckets_[next_reap_++]);
    launch(*buckets_[next_launch_++]);
  }
  if (zero_ == 2) reap(false);  // free the buffers of the buckets already reduced
}

void StageOptimizer::launch(Bucket& b) {
  torch::NoGradGuard ng;
  if (!b.flat.defined()) b.flat = torch::empty({b.size}, b.options);
  for (size_t j = 0; j < b.params.size(); ++j) {
    auto& p = all_.params[b.params[j]];
    auto slot = b.flat.narrow(0, b.offset[j], p.numel());
    const bool has = p.grad().defined();
    if (has) slot.copy_(p.grad().reshape({-1}));
    else slot.zero_();
    b.flat[b.flag_at[j]].fill_(has ? 1 : 0);
    // ZeRO-2: the owner alone needs the sum; this rank's share is in the bucket now.
    if (zero_ == 2 && has && owner_[b.params[j]] != w_->rank()) p.mutable_grad().reset();
  }
  for (auto& s : b.segments) {
    auto part = s.owner < 0 ? b.flat : b.flat.narrow(0, s.begin, s.numel);
    b.works.push_back(s.owner < 0 ? w_->all_reduce_async(part) : w_->reduce_async(part, s.owner));
  }
  b.launched = true;
  if (zero_ == 2) peak_held_ = std::max(peak_held_, held_bytes());
}

void StageOptimizer::unpack(Bucket& b) {
  for (auto& work : b.works) w_->wait(work, zero_ == 2 ? "gradient reduce" : "gradient all-reduce");
  b.works.clear();
  torch::NoGradGuard ng;
  const auto flags = b.flat.index_select(0, b.flag_index).to(at::kFloat).cpu();
  const float* has = flags.data_ptr<float>();
  for (size_t j = 0; j < b.params.size(); ++j) {
    auto& p = all_.params[b.params[j]];
    if (zero_ == 2 && owner_[b.params[j]] != w_->rank()) {  // another rank's tensor: its sum is not here
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
  b.unpacked = true;
  if (zero_ == 2) b.flat = at::Tensor();
}

void StageOptimizer::reap(bool block) {
  for (; next_reap_ < next_launch_; ++next_reap_) {
    auto& b = *buckets_[next_reap_];
    if (!block)
      for (auto& work : b.works)
        if (!work->isCompleted()) return;
    unpack(b);
  }
}

void StageOptimizer::finish_backward() {
  if (!w_) return;
  const auto t0 = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  overlapped_ = static_cast<int64_t>(next_launch_);
  while (next_launch_ < buckets_.size()) {  // unused tensors, or overlap off
    if (zero_ == 2)
      while (next_launch_ - next_reap_ >= kZero2InFlight) unpack(*buckets_[next_reap_++]);
    launch(*buckets_[next_launch_++]);
  }
  reap(true);
  for (auto& b : buckets_) {
    b->launched = b->unpacked = false, b->pending = b->params.size();
    std::fill(b->ready.begin(), b->ready.end(), false);
  }
  next_launch_ = next_reap_ = 0;
  syncing_ = false;
  sync_ms_ = 1e3 * since(t0);
  if (!reported_) {
    // Measured once per stage: what each rank holds after the reduction (ZeRO-2: its own tensors' gradients).
    reported_ = true;
    const int n = w_->size();
    std::vector<int64_t> v(static_cast<size_t>(2 * n), 0);
    v[static_cast<size_t>(w_->rank())] = held_bytes();
    v[static_cast<size_t>(n + w_->rank())] = std::max(peak_held_, held_bytes());
    sum_over_ranks(w_, v);
    const double mb = 1024.0 * 1024.0;
    std::string s = "distributed: gradients and bucket buffers held per rank after the first reduction:";
    for (int r = 0; r < n; ++r) s += fmt::format(" {}={:.2f} MB", r, static_cast<double>(v[static_cast<size_t>(r)]) / mb);
    if (zero_ == 2) {
      s += "; at most during that backward:";
      for (int r = 0; r < n; ++r) s += fmt::format(" {}={:.2f} MB", r, static_cast<double>(v[static_cast<size_t>(n + r)]) / mb);
    }
    log::info("{}", s);
  }
  peak_held_ = 0;
}

double StageOptimizer::clip_grad_norm(double max_norm) {
  max_norm = max_norm > 0 ? max_norm : 1e30;
  if (zero_ < 2) return torch::nn::utils::clip_grad_norm_(all_.params, max_norm);
  // ZeRO-2: each owner's per-tensor norms, zeros elsewhere, summed over ranks (exact: one non-zero term each),
  // then the same 2-norm of those norms, in tensor order, as torch::nn::utils::clip_grad_norm_ takes.
  torch::NoGradGuard ng;
  const auto n = static_cast<int64_t>(all_.params.size());
  auto v = torch::zeros({2 * n}, torch::TensorOptions().dtype(at::kFloat).device(w_->device()));
  std::vector<at::Tensor> mine;
  for (int64_t i = 0; i < n; ++i) {
    const auto& p = all_.params[static_cast<size_t>(i)];
    if (owner_[static_cast<size_t>(i)] != w_->rank() || !p.grad().defined()) continue;
    v[i].copy_(p.grad().data().norm(2.0));
    v[n + i].fill_(1);
    mine.push_back(p);
  }
  w_->all_reduce(v);
  const auto norms = v.narrow(0, 0, n).masked_select(v.narrow(0, n, n) > 0.5f);
  if (norms.numel() == 0) return 0.0;
  const auto total = norms.numel() == 1 ? norms[0] : norms.norm(2.0);
  const auto coef = torch::clamp(max_norm / (total + 1e-6), std::nullopt, 1.0);
  for (auto& p : mine) p.grad().data().mul_(coef);
  return total.item().toDouble();
}

void StageOptimizer::step(double lr) {
  if (full_) full_->state().clear();  // the copy gathered for the last checkpoint
  set_lr(*opt_, lr);
  opt_->step();
  if (zero_ >= 1) {
    // Each owner broadcasts its updated tensors (one flat buffer per owner).
    torch::NoGradGuard ng;
    for (int r = 0; r < w_->size(); ++r) {
      std::vector<size_t> idx;
      for (size_t i = 0; i < all_.params.size(); ++i)
        if (owner_[i] == r) idx.push_back(i);
      if (idx.empty()) continue;
      std::vector<at::Tensor> parts;
      for (auto i : idx) parts.push_back(all_.params[i].detach().reshape({-1}).to(at::kFloat));
      auto flat = torch::cat(parts);
      w_->broadcast(flat, r);
      if (r == w_->rank()) continue;
      int64_t off = 0;
      for (auto i : idx) {
        auto& p = all_.params[i];
        p.detach().copy_(flat.narrow(0, off, p.numel()).view(p.sizes()));
        off += p.numel();
      }
    }
  }
  zero_grad();
}

void StageOptimizer::zero_grad() {
  for (auto& p : all_.params)
    if (p.grad().defined()) p.mutable_grad().reset();
}

torch::optim::Optimizer* StageOptimizer::checkpoint_state() {
  if (zero_ == 0) return opt_.get();
  // Owners send their AdamW moments and step counts to rank 0, which assembles a full AdamW: the same file as a
  // single process writes, so any world size resumes from it.
  const int me = w_->rank();
  if (me == 0 && !full_) full_ = make_adamw(all_, oc_);
  if (me == 0) full_->state().clear();
  for (int r = 0; r < w_->size(); ++r) {
    std::vector<size_t> idx;
    int64_t numel = 0;
    for (size_t i = 0; i < all_.params.size(); ++i)
      if (owner_[i] == r) idx.push_back(i), numel += all_.params[i].numel();
    if (idx.empty() || (me != 0 && me != r)) continue;
    at::Tensor moments, steps;
    if (me == r) {
      std::vector<at::Tensor> parts;
      std::vector<int64_t> st;
      for (auto i : idx) {
        const auto& p = all_.params[i];
        auto it = opt_->state().find(p.unsafeGetTensorImpl());
        if (it == opt_->state().end()) {
          parts.push_back(torch::zeros({2 * p.numel()}, torch::TensorOptions().dtype(at::kFloat).device(p.device())));
          st.push_back(-1);
          continue;
        }
        auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
        parts.push_back(s.exp_avg().reshape({-1}).to(at::kFloat));
        parts.push_back(s.exp_avg_sq().reshape({-1}).to(at::kFloat));
        st.push_back(s.step());
      }
      moments = torch::cat(parts);
      steps = torch::tensor(st, torch::kInt64).to(w_->device());
      if (r != 0) w_->send(moments, 0), w_->send(steps, 0);
    } else {
      moments = torch::empty({2 * numel}, torch::TensorOptions().dtype(at::kFloat).device(w_->device()));
      steps = torch::empty({static_cast<int64_t>(idx.size())}, torch::TensorOptions().dtype(at::kLong).device(w_->device()));
      w_->recv(moments, r), w_->recv(steps, r);
    }
    if (me != 0) continue;
    const auto st = steps.cpu();
    int64_t off = 0;
    for (size_t j = 0; j < idx.size(); ++j) {
      const auto& p = all_.params[idx[j]];
      const int64_t step = st[static_cast<int64_t>(j)].item<int64_t>();
      if (step >= 0) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(step);
        s->exp_avg(moments.narrow(0, off, p.numel()).view(p.sizes()).to(p.scalar_type()).clone());
        s->exp_avg_sq(moments.narrow(0, off + p.numel(), p.numel()).view(p.sizes()).to(p.scalar_type()).clone());
        full_->state()[p.unsafeGetTensorImpl()] = std::move(s);
      }
      off += 2 * p.numel();
    }
  }
  if (me != 0) return nullptr;
  const double lr = static_cast<torch::optim::AdamWOptions&>(opt_->param_groups().at(0).options()).lr();
  set_lr(*full_, lr);
  return full_.get();
}

void StageOptimizer::load(const std::string& ckpt_dir) {
  if (zero_ == 0) return load_checkpoint_optimizer(ckpt_dir, *opt_);
  // The full state, then only this rank's partition is kept.
  auto full = make_adamw(all_, oc_);
  load_checkpoint_optimizer(ckpt_dir, *full);
  for (size_t i = 0; i < all_.params.size(); ++i) {
    if (owner_[i] != w_->rank()) continue;
    auto* key = all_.params[i].unsafeGetTensorImpl();
    auto it = full->state().find(key);
    if (it != full->state().end()) opt_->state()[key] = std::move(it->second);
  }
}

int64_t StageOptimizer::state_bytes() const {
  int64_t bytes = 0;
  for (auto& g : opt_->param_groups())
    for (auto& p : g.params()) bytes += 2 * p.numel() * static_cast<int64_t>(p.element_size());
  return bytes;
}

int64_t StageOptimizer::grad_bytes() const {
  int64_t bytes = 0;
  for (size_t i = 0; i < all_.params.size(); ++i)
    if (zero_ < 2 || owner_[i] == w_->rank()) bytes += nbytes(all_.params[i]);
  for (auto& b : buckets_) bytes += nbytes(b->flat);  // persistent below ZeRO-2
  return bytes;
}

int64_t StageOptimizer::held_bytes() const {
  int64_t bytes = 0;
  for (auto& p : all_.params) bytes += nbytes(p.grad());
  for (auto& b : buckets_) bytes += nbytes(b->flat);
  return bytes;
}

std::string StageOptimizer::memory_report() {
  const double mb = 1024.0 * 1024.0;
  if (!w_)
    return fmt::format("AdamW state {:.2f} MB, gradients {:.2f} MB", static_cast<double>(state_bytes()) / mb,
                       static_cast<double>(grad_bytes()) / mb);
  const auto n = static_cast<size_t>(w_->size());
  std::vector<int64_t> per(2 * n, 0);
  per[static_cast<size_t>(w_->rank())] = state_bytes();
  per[n + static_cast<size_t>(w_->rank())] = grad_bytes();
  sum_over_ranks(w_, per);
  const char* how[] = {"replicated", "ZeRO-1 sharded", "ZeRO-2 sharded"};
  std::string s = fmt::format("AdamW state per rank ({}):", how[zero_]);
  for (size_t r = 0; r < n; ++r) s += fmt::format(" {}={:.2f} MB", r, static_cast<double>(per[r]) / mb);
  s += fmt::format("; gradients per rank after the reduction ({}, bucket buffers included):", zero_ == 2 ? how[2] : how[0]);
  for (size_t r = 0; r < n; ++r) s += fmt::format(" {}={:.2f} MB", r, static_cast<double>(per[n + r]) / mb);
  return s + fmt::format("; gradients summed in {} bucket(s){}{}", buckets_.size(),
                         dc_.overlap ? " during backward" : " after backward",
                         zero_ == 2 ? ", each reduced to its tensors' owners" : "");
}

}  // namespace phantom::train
