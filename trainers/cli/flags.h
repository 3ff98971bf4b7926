// Strict reading of numeric flags (phantom/util/parse.h): "abc", "010", "0x10", "3.5" and out-of-range values are
// usage errors naming the flag, never std::stoll's "stoll" or a silently octal value.
#pragma once

#include <cstdint>
#include <string>

#include "trainers/cli/args.h"

namespace phantom::cli {

// --name as a decimal integer in [lo, hi]; `fallback` when absent.
int64_t int_flag(const Args& a, const std::string& name, int64_t fallback, int64_t lo = INT64_MIN,
                 int64_t hi = INT64_MAX);
// --name as a finite decimal number in [lo, hi].
double number_flag(const Args& a, const std::string& name, double fallback, double lo = -1e308, double hi = 1e308);
// --threads: 0 (one per core) up to 4 per core (phantom/util/threads.h).
int64_t threads_flag(const Args& a);

}  // namespace phantom::cli
