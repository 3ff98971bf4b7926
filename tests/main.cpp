// Catch2 main: sets a fixed thread count so numeric tests do not depend on the machine.
#define CATCH_CONFIG_RUNNER
#include <cstdlib>
#include <catch2/catch.hpp>

#include "phantom/model/runtime.h"
#include "phantom/util/log.h"

int main(int argc, char** argv) {
  // MKL may otherwise use fewer threads than asked when the machine is busy, which changes summation order:
  // same-seed CPU runs (and exact resume) must not depend on the load of the machine.
  setenv("MKL_DYNAMIC", "FALSE", 0);
  phantom::log::init();
  phantom::set_threads(0);
  return Catch::Session().run(argc, argv);
}
