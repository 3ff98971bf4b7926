#include "phantom/util/stop.h"

#include <atomic>
#include <csignal>

namespace phantom::util {
namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }  // async-signal-safe: a lock-free atomic store
}  // namespace

bool stop_requested() { return g_stop.load(); }
void request_stop() { g_stop = true; }

StopOnSignals::StopOnSignals() {
  g_stop = false;
  old_int_ = std::signal(SIGINT, on_signal);
  old_term_ = std::signal(SIGTERM, on_signal);
}

StopOnSignals::~StopOnSignals() {
  std::signal(SIGINT, old_int_);
  std::signal(SIGTERM, old_term_);
}

}  // namespace phantom::util
