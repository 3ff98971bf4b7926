// Runtime plumbing: threads, device choice, the std::filesystem symbol clash with LibTorch, atomic writes,
// and (on a GPU machine) our CUDA kernels against the plain tensor formula.
#include <filesystem>
#include <fstream>

#include "phantom/cuda/kernels.h"
#include "phantom/runtime.h"
#include "phantom/util/atomic_file.h"
#include "tests/helpers.h"

namespace fs = std::filesystem;

TEST_CASE("runtime: thread count is set explicitly") {
  CHECK(phantom::set_threads(1) == 1);
  CHECK(phantom::set_threads(0) >= 1);
  CHECK(phantom::pick_device("cpu").is_cpu());
  CHECK(phantom::pick_compute_dtype("auto", c10::Device(c10::kCPU)) == c10::kFloat);
  CHECK(phantom::pick_compute_dtype("bf16", c10::Device(c10::kCPU)) == c10::kBFloat16);
  if (!torch::cuda::is_available()) CHECK_THROWS_WITH(phantom::pick_device("cuda"), Catch::Contains("no CUDA"));
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

TEST_CASE("cuda: fused Phantom gate equals the tensor formula [gpu]") {
#ifdef PHANTOM_HAS_CUDA
  CHECK(phantom::cuda::compiled());
#endif
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: the fused gate kernel is compiled and linked but not run here");
    return;
  }
  torch::manual_seed(0);
  const int64_t D = 96;
  auto opts = torch::TensorOptions().device(torch::kCUDA);
  auto o2 = torch::randn({3, 5, 7, 2 * D}, opts);
  auto fw = torch::randn({D}, opts), gw = torch::randn({D}, opts), fb = torch::randn({1}, opts),
       gb = torch::randn({1}, opts);
  auto a = o2.narrow(-1, 0, D), b = o2.narrow(-1, D, D);
  auto w = torch::sigmoid((a * fw).sum(-1, true) + fb - (b * gw).sum(-1, true) - gb);
  auto ref = w * a + (1 - w) * b;
  auto out = phantom::cuda::phantom_gate_forward(o2, fw, fb, gw, gb);
  CHECK((out - ref).abs().max().item<float>() < 1e-5);
  auto out_bf = phantom::cuda::phantom_gate_forward(o2.to(torch::kBFloat16), fw, fb, gw, gb);
  CHECK((out_bf.to(torch::kFloat) - ref).abs().max().item<float>() < 5e-2);
}
