// The process group of a torchrun launch and its failure protocol (world.h).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1  // the wheel's libtorch_cpu has Gloo; its header needs the macro (and Debian's gloo headers)
#endif
#include "trainers/distributed/world.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <cstdlib>

#include "phantom/model/runtime.h"
#include "phantom/util/logf.h"
#include "trainers/distributed/nccl.h"

namespace phantom::distributed {

namespace {
using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

World* g_world = nullptr;  // one process group per process, like torch.distributed's default group

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

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

// ---- World ---------------------------------------------------------------------------------------------------------

World* World::current() { return g_world; }

World* World::init(const DistributedConfig& cfg, const std::string& device) {
  if (g_world) return g_world;
  auto env = util::launch_env();
  if (!env || env->world == 1) return nullptr;
  // Never destroyed: a process group torn down while a peer is gone can block; the process exits instead.
  g_world = new World(*env, cfg, device);
  std::atexit([] {
    if (g_world && g_world->heartbeat_.joinable()) g_world->stop_heartbeat_ = true, g_world->heartbeat_.join();
  });
  return g_world;
}

World::World(const util::LaunchEnv& env, const DistributedConfig& cfg, const std::string& device) : env_(env), cfg_(cfg) {
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

  try {
    make_process_group(timeout);
  } catch (const std::exception& e) {
    // c10d names the store keys it waited for ("/phantom/0/gloo/0/..."): say what they mean instead.
    std::string why = e.what();
    why = why.find("imed out") != std::string::npos || why.find("imeout") != std::string::npos
              ? "timed out"
              : first_line(why).substr(0, 200);
    throw std::runtime_error("distributed: rank " + std::to_string(env.rank) + " of " + std::to_string(env.world) +
                             " could not form the process group with its peers within distributed.timeout_s " +
                             fmt::format("{:g}", cfg.timeout_s) + " s (" + why + "): a rank did not start or "
                             "cannot reach the store at " + env.master_addr + ":" + std::to_string(env.master_port) +
                             "; check that every rank was launched (WORLD_SIZE " + std::to_string(env.world) +
                             ") and the launcher's log");
  }
  // torchrun answers a dead rank with SIGTERM to the others: delivered to the heartbeat thread inside a store write,
  // it interrupted the socket call and that rank looked dead too. The thread inherits a mask without the stop signals.
  sigset_t stop_signals, before;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &before);
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  // Every rank connected: a collective proves it (and fails with a clear message if one never comes).
  std::vector<int64_t> one{1};
  sum_over_ranks(this, one);
  log::info("distributed: rank {} of {} (local rank {}), backend {}, device {}, store {}:{}{}", env.rank, env.world,
            env.local_rank, backend_name_, device_.str(), env.master_addr, env.master_port,
            env.agent_store ? " (torchrun agent)" : "");
}

// The backend's process group over the store (gloo or NCCL); c10d waits here for every peer to connect.
void World::make_process_group(std::chrono::milliseconds timeout) {
  const auto& env = env_;
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
}

World::~World() {
  stop_heartbeat_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
}

// "beat/<rank>" = "<beats> <collectives entered>": a killed rank stops beating, a stuck one stops advancing.
void World::heartbeat_loop() {
  int64_t beat = 0;
  const std::string key = "beat/" + std::to_string(env_.rank);
  int failures = 0;  // in a row: one failed write is a slow store, not a gone one
  while (!stop_heartbeat_) {
    try {
      store_->set(key, std::to_string(beat++) + " " + std::to_string(collectives_.load()));
      failures = 0;
    } catch (...) {
      if (++failures == 20) return;  // ~10 s without the store: its host exited, nothing left to tell
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
    std::string suspects;  // the ranks silent at the last look, since suspected_at
    double suspected_at = 0;
    while (diagnosis.empty() && since(t0) < grace) {
      for (int r = 0; r < n && diagnosis.empty(); ++r)
        if (r != me && store_->check({key("error", r)})) diagnosis = "rank " + std::to_string(r) + " failed: " + value(key("error", r));
      if (diagnosis.empty() && since(t0) >= 3.0) {
        b1 = beats();
        std::string silent;
        for (int r = 0; r < n; ++r)
          if (r != me && b1[static_cast<size_t>(r)] == b0[static_cast<size_t>(r)] && !store_->check({key("down", r)}))
            silent += (silent.empty() ? "" : ", ") + std::to_string(r);
        // Named only when two looks a second apart agree: a rank starved for a moment is not a dead one.
        if (!silent.empty() && silent == suspects && since(t0) - suspected_at >= 1.0)
          diagnosis = "rank " + silent + " failed: its heartbeat stopped (killed or crashed without a message; see the "
                      "launcher's log)";
        else if (silent != suspects)
          suspects = silent, suspected_at = since(t0);
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

}  // namespace phantom::distributed
