#include "phantom/util/memory.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace phantom::util {

bool keep_freed_memory() {
  const char* mode = std::getenv("PHANTOM_MALLOC");
  if (mode && std::strcmp(mode, "default") == 0) return false;
  mallopt(M_MMAP_MAX, 0);                 // large blocks from the heap, not from fresh mmaps
  mallopt(M_TRIM_THRESHOLD, 0x7fffffff);  // freed memory at the top of the heap stays mapped (at most 2 GiB trim step)
  return true;
}

}  // namespace phantom::util
