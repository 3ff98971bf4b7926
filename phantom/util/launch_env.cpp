#include "phantom/util/launch_env.h"

#include <cstdlib>
#include <stdexcept>

namespace phantom::util {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi)
    throw std::runtime_error(std::string("launch environment: ") + name + "='" + v + "' is not an integer in [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(x);
}

}  // namespace

LaunchEnv launch_position() {
  LaunchEnv e;
  e.world = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  e.rank = env_int("RANK", 0, 0, e.world - 1);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0, e.world - 1);
  return e;
}

std::optional<LaunchEnv> launch_env() {
  if (!env("WORLD_SIZE")) return std::nullopt;
  for (const char* name : {"RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"})
    if (!env(name))
      throw std::runtime_error(std::string("distributed launch: WORLD_SIZE is set but ") + name +
                               " is not (start with torchrun, see docs/distributed.md)");
  LaunchEnv e = launch_position();
  e.master_port = env_int("MASTER_PORT", 0, 1, 65535);
  e.master_addr = env("MASTER_ADDR");
  const char* agent = env("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && std::string(agent) == "True";
  if (const char* a = env("TORCHELASTIC_RESTART_COUNT")) e.attempt = a;
  return e;
}

}  // namespace phantom::util
