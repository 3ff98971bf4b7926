// Where this process sits in a torchrun launch: RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address. One
// parser for the trainer's process group, `phantom eval`'s rank shards and `phantom generate`'s GPU choice.
#pragma once

#include <optional>
#include <string>

namespace phantom::util {

struct LaunchEnv {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;   // TORCHELASTIC_USE_AGENT_STORE: torchrun's agent hosts the TCPStore
  std::string attempt = "0";  // TORCHELASTIC_RESTART_COUNT
};

// RANK, WORLD_SIZE and LOCAL_RANK, each 0 / 1 / RANK's value when unset (a process started by hand is rank 0 of
// 1). A malformed or out-of-range value is an error naming the variable.
LaunchEnv launch_position();

// The position plus the rendezvous (MASTER_ADDR, MASTER_PORT, all required once WORLD_SIZE is set): what a process
// group needs. nullopt when WORLD_SIZE is unset.
std::optional<LaunchEnv> launch_env();

}  // namespace phantom::util
