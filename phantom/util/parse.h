// Strict number parsing for flags, configs and files: the whole text must be the number. "010" and "0x10" are
// errors rather than 8 and 16 (std::stoll with base 0 reads them as octal and hex), "12abc" is an error rather
// than 12, and out-of-range values are errors rather than wrapped or clamped.
#pragma once

#include <cstdint>
#include <string>

namespace phantom::util {

// Decimal integer: optional sign, then "0" or a digit string without leading zeros. With `allow_exponent`,
// also an integral number written with an exponent ("1e4", "2.5e3"), as configs commonly write step counts.
bool parse_int(const std::string& s, int64_t& out, bool allow_exponent = false);

// A finite decimal number ("1e-5", "-0.5", ".5"); no hex floats, inf or nan.
bool parse_number(const std::string& s, double& out);

}  // namespace phantom::util
