// The bound on thread counts a config or flag may ask for: 4 threads per core. More only adds scheduling cost
// (and 100000 threads take minutes just to start), so a larger request is an error that says the limit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>

namespace phantom::util {

inline int64_t max_threads() {
  const int64_t cores = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  return 4 * cores;
}

// Empty when n <= max_threads(); else "<key>: N threads is more than 4 per core (...)".
inline std::string threads_problem(int64_t n, const std::string& key) {
  if (n <= max_threads()) return "";
  return key + ": " + std::to_string(n) + " threads is more than 4 per core (" + std::to_string(max_threads() / 4) +
         " cores here, so at most " + std::to_string(max_threads()) + "); use 0 for one per core";
}

}  // namespace phantom::util
