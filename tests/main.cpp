// Catch2 main: sets a fixed thread count so numeric tests do not depend on the machine.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "phantom/runtime.h"
#include "phantom/util/log.h"

int main(int argc, char** argv) {
  phantom::log::init();
  phantom::set_threads(0);
  return Catch::Session().run(argc, argv);
}
