// The data loader: a deterministic global order per epoch (seeded by run seed and epoch, the same for any world
// size), optional length grouping, sharding of each global batch across ranks, worker threads preparing batches
// ahead, and a position that checkpoints and restores exactly.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <optional>
#include <vector>

namespace phantom::data {

struct LoaderOptions {
  int64_t global_batch = 1;    // samples per micro-batch over all ranks
  int64_t rank = 0, world = 1;
  uint64_t seed = 0;
  bool shuffle = true;
  bool group_by_length = true;
  int64_t group_window = 64;   // blocks per length-sorting window
  int64_t group_unit = 0;      // samples shuffled as one block after length sorting (a multiple of global_batch,
                               // e.g. one optimiser step's); 0 = global_batch
  int64_t prefetch = 4;        // batches prepared ahead (one thread each)
  bool drop_last = true;       // a trailing partial global batch is dropped (keeps every rank's batch equal)
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // global batches of this epoch already consumed
};

// Makes torch ops in the calling (worker) thread run on that thread alone: every prefetch thread is one core's
// worth of work, instead of each opening an OpenMP team the size of the machine (oversubscription).
void single_threaded_worker();

// `Prepared` is whatever `prepare(indices)` builds for one batch (typically a collated data::Batch).
template <class Prepared>
class Loader {
 public:
  using PrepareFn = std::function<Prepared(const std::vector<size_t>& sample_indices)>;
  Loader(std::vector<int64_t> lengths, LoaderOptions opt, PrepareFn prepare)
      : lengths_(std::move(lengths)), opt_(opt), prepare_(std::move(prepare)) {}
  ~Loader() { drain(); }

  int64_t batches_per_epoch() const {
    const auto n = static_cast<int64_t>(lengths_.size());
    return opt_.drop_last ? n / opt_.global_batch : (n + opt_.global_batch - 1) / opt_.global_batch;
  }
  LoaderPosition position() const { return pos_; }
  void restore(LoaderPosition p) {
    drain();
    pos_ = p;
    next_to_launch_ = p;
  }

  // The global sample order of an epoch (every rank computes the same); valid until another epoch's is asked for.
  const std::vector<size_t>& epoch_order(int64_t epoch) const;
  // This rank's sample indices of global batch `b` of epoch `e`.
  std::vector<size_t> rank_indices(int64_t epoch, int64_t b) const;

  // The next batch of this rank; crosses into the next epoch when one ends. Never returns empty.
  Prepared next() {
    while (static_cast<int64_t>(queue_.size()) < std::max<int64_t>(1, opt_.prefetch)) launch();
    auto f = std::move(queue_.front());
    queue_.pop_front();
    advance(pos_);
    return f.get();
  }

 private:
  void advance(LoaderPosition& p) const {
    if (++p.batch >= batches_per_epoch()) p.batch = 0, ++p.epoch;
  }
  void launch() {
    auto idx = rank_indices(next_to_launch_.epoch, next_to_launch_.batch);
    advance(next_to_launch_);
    queue_.push_back(std::async(std::launch::async, [this, idx = std::move(idx)] {
      single_threaded_worker();
      return prepare_(idx);
    }));
  }
  void drain() {
    for (auto& f : queue_)
      if (f.valid()) {
        try {
          f.get();
        } catch (...) {
        }
      }
    queue_.clear();
  }

  std::vector<int64_t> lengths_;
  LoaderOptions opt_;
  PrepareFn prepare_;
  LoaderPosition pos_, next_to_launch_;
  std::deque<std::future<Prepared>> queue_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<size_t> cached_order_;
};

// Seeded permutation (splitmix64-driven Fisher-Yates: identical on every platform and standard library).
std::vector<size_t> seeded_permutation(size_t n, uint64_t seed);

// The order of one epoch, independent of rank/world: shuffled, then (optionally) sorted by length inside windows
// of `group_window` blocks of `group_unit` samples, with the blocks of each window shuffled again so long ones are
// not all last. With group_unit = one optimiser step's samples, any split of a step into micro-batches and ranks
// reads the same order.
std::vector<size_t> epoch_sample_order(const std::vector<int64_t>& lengths, const LoaderOptions& opt, int64_t epoch);

template <class Prepared>
const std::vector<size_t>& Loader<Prepared>::epoch_order(int64_t epoch) const {
  if (epoch != cached_epoch_) cached_order_ = epoch_sample_order(lengths_, opt_, epoch), cached_epoch_ = epoch;
  return cached_order_;
}

template <class Prepared>
std::vector<size_t> Loader<Prepared>::rank_indices(int64_t epoch, int64_t b) const {
  const auto& order = epoch_order(epoch);  // not copied: 16 MB a launch for a 2 M-row file
  const int64_t G = opt_.global_batch, n = static_cast<int64_t>(order.size());
  const int64_t begin = b * G, end = std::min(n, begin + G);
  // Contiguous chunks per rank: rank r gets [begin + r*G/world, begin + (r+1)*G/world).
  const int64_t per = (end - begin + opt_.world - 1) / opt_.world;
  std::vector<size_t> out;
  for (int64_t i = begin + opt_.rank * per; i < std::min(end, begin + (opt_.rank + 1) * per); ++i)
    out.push_back(order[static_cast<size_t>(i)]);
  return out;
}

}  // namespace phantom::data
