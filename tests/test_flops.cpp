// The step FLOP count behind TFLOP/s and MFU (trainers/recipe/flops.h) against a hand count on the tiny VLM, and
// the device peak table.
#include <catch2/catch.hpp>

#include "phantom/model/model.h"
#include "tests/tiny.h"
#include "trainers/recipe/flops.h"
#include "trainers/recipe/optim.h"

using namespace phantom;

namespace {

// Tiny VLM without the Phantom dimension: ViT 1 block x 16 wide on 28-px tiles (4 x 4 patches + CLS = 17 tokens,
// MLP 32), projector 64 -> 32 -> 32 on 4 tokens per tile, decoder 2 layers x 32 wide (4 heads of 8, 2 KV heads,
// SwiGLU 64), tied head over 64 tokens.
PhantomModel tiny() {
  auto c = test::tiny_vlm_config();
  c.phantom = "off";
  c.llm.tie_word_embeddings = true;
  return PhantomModel(c);
}

recipe::StepWork work() {
  recipe::StepWork w;
  w.tiles = 2, w.tokens = 50, w.row_length = 30, w.head_rows = 10;
  return w;
}

}  // namespace

TEST_CASE("flops: step 1 shape (projector trains, ViT and LLM frozen) against a hand count") {
  auto m = tiny();
  recipe::select_trainable(*m, {R"(^vision_proj\.)"});
  const auto f = recipe::step_flops(*m, work());
  // ViT, nothing trainable below it: forward only. Patch conv 2 x (16*3*7*7) x 16 patches x 2 tiles; qkv 2 x 768 x
  // 34 rows; proj 2 x 256 x 34; fc1 + fc2 2 x 2 x 512 x 34.
  CHECK(f.vision == 150528.0 + 52224.0 + 17408.0 + 69632.0);
  // Projector on 8 rows: its LayerNorm trains, so fc1 (64x32) and fc2 (32x32) pass gradients: x3 each.
  CHECK(f.projector == 3 * (2.0 * 2048 * 8 + 2.0 * 1024 * 8));
  // Decoder, frozen with the projector below it: forward + input gradient (x2) for qkv (32x64), o (32x32),
  // gate_up (32x128), down (64x32) on 50 tokens, two layers.
  CHECK(f.decoder == 2 * (2.0 * (2048 + 1024 + 4096 + 2048) * 50 * 2));
  // Scores: decoder 4 x 4 heads x 8 x 30 x 50 per layer, x3 (gradients flow); ViT 4 x 16 x 17 x 17 x 2 tiles, x1.
  CHECK(f.attention == 2 * 3 * (4.0 * 4 * 8 * 30 * 50) + 4.0 * 16 * 17 * 17 * 2);
  // Tied head (64 x 32) on the 10 rows it computes: forward + input gradient.
  CHECK(f.head == 2.0 * 2048 * 10 * 2);
}

TEST_CASE("flops: a trainable Linear with nothing trainable below it: forward + weight gradient only") {
  auto m = tiny();
  recipe::select_trainable(*m, {R"(^vision_proj\.1\.)"});  // fc1 alone, its LayerNorm frozen
  const auto f = recipe::step_flops(*m, work());
  // fc1 trains, nothing below: forward + weight gradient; fc2 is frozen with fc1 below it: forward + input gradient.
  CHECK(f.projector == 2.0 * 2048 * 8 * 2 + 2.0 * 1024 * 8 * 2);
}

TEST_CASE("flops: everything trains: 6 x parameters per row (the patch conv 4 x: no gradient for the pixels)") {
  auto m = tiny();
  recipe::select_trainable(*m, {".*"});
  const auto f = recipe::step_flops(*m, work());
  CHECK(f.vision == 2.0 * 2352 * 16 * 2 * 2 + 3 * (52224.0 + 17408.0 + 69632.0));
  CHECK(f.projector == 3 * (2.0 * 2048 * 8 + 2.0 * 1024 * 8));
  CHECK(f.decoder == 2 * (2.0 * (2048 + 1024 + 4096 + 2048) * 50 * 3));
  CHECK(f.attention == 3 * (2 * 4.0 * 4 * 8 * 30 * 50 + 4.0 * 16 * 17 * 17 * 2));
  CHECK(f.head == 2.0 * 2048 * 10 * 3);
  // Text only: no ViT, no projector.
  auto w = work();
  w.tiles = 0;
  const auto t = recipe::step_flops(*m, w);
  CHECK(t.vision == 0);
  CHECK(t.projector == 0);
  CHECK(t.decoder == f.decoder);
}

TEST_CASE("flops: device peaks are the datasheets' dense bf16 figures, log.peak_tflops wins, none on CPU") {
  CHECK(recipe::bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0);
  CHECK(recipe::bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0);
  CHECK(recipe::bf16_peak_tflops("NVIDIA H100 NVL") == 835.0);
  CHECK(recipe::bf16_peak_tflops("NVIDIA H200") == 989.0);
  CHECK(recipe::bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0);
  CHECK(recipe::bf16_peak_tflops("NVIDIA RTX A6000") == 154.8);
  CHECK(recipe::bf16_peak_tflops("NVIDIA GeForce RTX 3090") == 71.0);
  CHECK(recipe::bf16_peak_tflops("NVIDIA GeForce RTX 3090 Ti") == 0.0);
  CHECK(recipe::bf16_peak_tflops("Tesla V100-SXM2-16GB") == 0.0);
  CHECK(recipe::peak_tflops_for(c10::Device(c10::kCPU), 0) == 0.0);
  CHECK(recipe::peak_tflops_for(c10::Device(c10::kCPU), 123.0) == 123.0);
}
