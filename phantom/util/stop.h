// SIGINT / SIGTERM as a request to stop at the next safe point. Long phases (training steps, the DPO reference
// pass, benchmark generation, evaluation) poll stop_requested() between units of work, save what they have, and
// end: the trainer with a checkpoint and exit 0, `phantom eval` with its answer shards written (a rerun resumes).
// docs/reliability.md lists where each phase checks.
#pragma once

#include <stdexcept>

namespace phantom::util {

bool stop_requested();
void request_stop();  // what the handler does (also for tests)

// Thrown by a phase that stopped on request after saving what it had; the caller reports and exits cleanly.
struct Stopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Installs SIGINT and SIGTERM handlers that request a stop (clearing any earlier request); the previous handlers
// come back on destruction.
class StopOnSignals {
 public:
  StopOnSignals();
  ~StopOnSignals();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

}  // namespace phantom::util
