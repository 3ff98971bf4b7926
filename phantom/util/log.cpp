#include "phantom/util/log.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <spdlog/spdlog.h>

namespace phantom::log {

void debug(const std::string& m) { spdlog::debug("{}", m); }
bool debug_enabled() { return spdlog::should_log(spdlog::level::debug); }
void info(const std::string& m) { spdlog::info("{}", m); }
void warn(const std::string& m) { spdlog::warn("{}", m); }
void error(const std::string& m) { spdlog::error("{}", m); }

void init(int rank, int world, bool quiet) {
  std::string pattern = "[%H:%M:%S.%e] ";
  if (world > 1) pattern += "[rank " + std::to_string(rank) + "/" + std::to_string(world) + "] ";
  pattern += "%^%l%$ %v";
  spdlog::set_pattern(pattern);
  if (const char* lvl = std::getenv("PHANTOM_LOG_LEVEL")) spdlog::set_level(spdlog::level::from_str(lvl));
  else if (quiet) spdlog::set_level(spdlog::level::warn);
}

bool stdout_is_terminal() { return isatty(fileno(stdout)) != 0; }

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

Progress::Progress(std::string label, int64_t total, double every_s, int64_t first)
    : label_(std::move(label)), total_(total), every_s_(every_s), first_(first), tty_(stdout_is_terminal()) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (tty_ && !finished_) std::fputc('\n', stdout);
}

std::string Progress::line(int64_t done, const std::string& extra) const {
  using namespace std::chrono;
  const double elapsed = duration<double>(steady_clock::now() - start_).count();
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 0.0;
  const int64_t run = done - first_;
  const double eta = run > 0 ? elapsed * (static_cast<double>(total_ - done) / static_cast<double>(run)) : -1;
  std::string s = label_ + " ";
  if (tty_) {
    const int width = 30, fill = static_cast<int>(frac * width);
    s += "[" + std::string(fill, '#') + std::string(width - fill, '.') + "] ";
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "%lld/%lld (%3.0f%%) elapsed %s eta %s", static_cast<long long>(done),
                static_cast<long long>(total_), 100.0 * frac, format_duration(elapsed).c_str(),
                eta < 0 ? "?" : format_duration(eta).c_str());
  s += buf;
  if (!extra.empty()) s += " | " + extra;
  return s;
}

void Progress::update(int64_t done, const std::string& extra) {
  using namespace std::chrono;
  const auto now = steady_clock::now();
  if (tty_) {
    std::printf("\r\033[K%s", line(done, extra).c_str());
    std::fflush(stdout);
  } else if (duration<double>(now - last_).count() >= every_s_) {
    last_ = now;
    spdlog::info("{}", line(done, extra));
  }
}

void Progress::clear() {
  if (tty_ && !finished_) std::printf("\r\033[K"), std::fflush(stdout);
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (tty_) {
    std::printf("\r\033[K%s\n", line(total_, extra).c_str());
    std::fflush(stdout);
  } else {
    spdlog::info("{}", line(total_, extra));
  }
}

}  // namespace phantom::log
