// `phantom info`: LibTorch, CUDA and thread information.
#include <cstdio>

#include "phantom/model/runtime.h"
#include "trainers/cli/args.h"
#include "trainers/cli/commands.h"
#include "trainers/cli/flags.h"

namespace phantom::cli {

int cmd_info(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"threads"}, {"help"});
  if (a.has("help")) {
    std::fputs("usage: phantom info [--threads N]\n", stdout);
    return 0;
  }
  set_threads(threads_flag(a));
  std::fputs(runtime_report().c_str(), stdout);
  return 0;
}

}  // namespace phantom::cli
