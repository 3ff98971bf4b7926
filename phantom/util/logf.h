// Formatted logging for torch translation units: `log::info("step {} loss {:.4f}", step, loss)`.
// Uses the fmt headers that ship with LibTorch, header-only (FMT_HEADER_ONLY is set on phantom_model).
#pragma once

#include <fmt/format.h>

#include <utility>

#include "phantom/util/log.h"

namespace phantom::log {

template <class A0, class... A>
void debug(fmt::format_string<A0, A...> f, A0&& a0, A&&... a) {
  debug(fmt::format(f, std::forward<A0>(a0), std::forward<A>(a)...));
}
template <class A0, class... A>
void info(fmt::format_string<A0, A...> f, A0&& a0, A&&... a) {
  info(fmt::format(f, std::forward<A0>(a0), std::forward<A>(a)...));
}
template <class A0, class... A>
void warn(fmt::format_string<A0, A...> f, A0&& a0, A&&... a) {
  warn(fmt::format(f, std::forward<A0>(a0), std::forward<A>(a)...));
}
template <class A0, class... A>
void error(fmt::format_string<A0, A...> f, A0&& a0, A&&... a) {
  error(fmt::format(f, std::forward<A0>(a0), std::forward<A>(a)...));
}

}  // namespace phantom::log
