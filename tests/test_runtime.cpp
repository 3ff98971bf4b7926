// Runtime plumbing: threads, device choice, the std::filesystem symbol clash with LibTorch, atomic writes.
#include <filesystem>
#include <fstream>

#include "phantom/model/runtime.h"
#include "phantom/util/atomic_file.h"
#include "tests/helpers.h"

namespace fs = std::filesystem;

TEST_CASE("runtime: thread count is set explicitly") {
  CHECK(phantom::set_threads(1) == 1);
  CHECK(phantom::set_threads(0) >= 1);
  CHECK(phantom::pick_device("cpu").is_cpu());
  CHECK(phantom::pick_compute_dtype("auto", c10::Device(c10::kCPU)) == c10::kFloat);
  CHECK(phantom::pick_compute_dtype("bf16", c10::Device(c10::kCPU)) == c10::kBFloat16);
  // Both branches assert: a machine with CUDA gets a CUDA device, one without an error that says so.
  if (torch::cuda::is_available())
    CHECK(phantom::pick_device("cuda").is_cuda());
  else
    CHECK_THROWS_WITH(phantom::pick_device("cuda"), Catch::Contains("no CUDA"));
}

TEST_CASE("runtime: std::filesystem resolves to libstdc++, not LibTorch's copy") {
  // LibTorch exports a static std::filesystem whose remove_all crashed when it was picked first (see CMakeLists).
  phantom::test::TempDir t;
  t.file("a/b/c.txt", "x");
  std::error_code ec;
  CHECK(fs::remove_all(t.path / "a", ec) == 3);
  CHECK_FALSE(ec);
  CHECK_FALSE(fs::exists(t.path / "a"));
}

TEST_CASE("runtime: atomic file writes replace whole files") {
  phantom::test::TempDir t;
  const auto p = t.str("f.txt");
  phantom::util::write_file_atomic(p, "first");
  phantom::util::write_file_atomic(p, "second");
  std::ifstream in(p);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(s == "second");
  int entries = 0;
  for (auto& e : fs::directory_iterator(t.path)) (void)e, ++entries;
  CHECK(entries == 1);  // no temporary left behind
  CHECK_THROWS_WITH(phantom::util::write_file_atomic(t.str("no/such/dir/f"), "x"), Catch::Contains("cannot create"));
}
