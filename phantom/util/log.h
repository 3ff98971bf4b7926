// Logging: spdlog with a rank-aware prefix, plus a progress bar that degrades to periodic lines off a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace phantom::log {

// Plain-string logging. (spdlog lives behind these in log.cpp; see CMakeLists.txt for why.)
void debug(const std::string& msg);
bool debug_enabled();  // whether debug lines are written (to skip building them)
void info(const std::string& msg);
void warn(const std::string& msg);
void error(const std::string& msg);

// Sets the global logger's pattern. rank/world come from the launcher (torchrun); world 1 shows no rank.
// Level from PHANTOM_LOG_LEVEL (trace|debug|info|warn|error), default info (`quiet`: warn, for ranks other than 0).
void init(int rank = 0, int world = 1, bool quiet = false);

// True when stdout is an interactive terminal.
bool stdout_is_terminal();

// A progress bar for long loops: `\r`-redrawn on a terminal, otherwise one plain line every `every_s` seconds
// (and at the end), so CI logs and `tee`d files stay readable.
class Progress {
 public:
  // `first`: work already done when the bar starts (a resumed run), so the ETA uses this run's rate only.
  Progress(std::string label, int64_t total, double every_s = 10.0, int64_t first = 0);
  ~Progress();
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  void clear();  // on a terminal, erases the bar's line so a log line can be printed (the next update redraws)

 private:
  std::string line(int64_t done, const std::string& extra) const;
  std::string label_;
  int64_t total_;
  double every_s_;
  int64_t first_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

// "1h02m", "3m07s", "12s"
std::string format_duration(double seconds);

}  // namespace phantom::log
