// Subcommands that are still small: info, and the ones whose implementation lands with later issues.
#include <cstdio>

#include "phantom/cli/args.h"
#include "phantom/cli/commands.h"
#include "phantom/runtime.h"

namespace phantom::cli {

int not_yet_available(const char* command, const char* issue) {
  std::fprintf(stderr, "error: `phantom %s` is not yet available in this build (it lands with %s)\n", command, issue);
  return 3;
}

int cmd_info(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"threads"}, {"help"});
  if (a.has("help")) {
    std::fputs("usage: phantom info [--threads N]\n", stdout);
    return 0;
  }
  set_threads(std::stoll(a.get("threads", "0")));
  std::fputs(runtime_report().c_str(), stdout);
  return 0;
}




int cmd_convert(int, char**) { return not_yet_available("convert", "issue 6 (trainers)"); }

}  // namespace phantom::cli
