// Mutation fuzzing of the input readers, built with -fsanitize=address,undefined (tests/fuzz/CMakeLists.txt,
// `scripts/test.sh --sanitize`). Each reader starts from valid inputs made here (a safetensors file, JSON/JSONL
// annotations, an InternVL meta file, configs/demo.yaml, an HF config.json, PNG/JPEG/WebP/BMP images; the tokenizer,
// benchmark and checkpoint files of fuzz_tokenizers.cpp, fuzz_eval.cpp and fuzz_checkpoints.cpp), applies
// random byte- and token-level mutations, and feeds the result to the real reader. A reader may accept or reject
// an input; what it must never do is crash, trip a sanitizer, hang, or reject with something other than a
// one-line std::runtime_error / std::invalid_argument that names the file. Every seed must be accepted as it is
// (a target whose seeds are rejected would fuzz nothing but its error path).
//
//   phantom_fuzz --source DIR [--iterations N] [--seed S] [--only NAME]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/annotations.h"
#include "data/images/image.h"
#include "data/images/image_limits.h"
#include "phantom/io/hf_config.h"
#include "phantom/io/safetensors.h"
#include "phantom/util/config.h"
#include "phantom/util/parse.h"
#include "phantom/util/log.h"
#include "tests/fuzz/fuzz.h"
#include "trainers/recipe/run_config.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace phantom;
using phantom::fuzz::read;
using phantom::fuzz::Target;
using phantom::fuzz::write;

namespace {

// ---- mutations ---------------------------------------------------------------------------------------------------
const char* kTokens[] = {"-1", "0", "1", "4294967296", "18446744073709551616", "9223372036854775807",
                         "-9223372036854775808", "1e309", "-1e309", "nan", "null", "true", "\"\"", "[]", "{}",
                         "[[[[[[[[[[[[", "]]]]", "\\u0000", "\\ud800", "\xff\xfe", "<image>", "<image><image>", "010",
                         "0x10", ":", ",", "\n", "- ", "&a ", "*a", "!!binary ", "\"", "\\", "{\"a\":", "  ", "~",
                         "..", "/dev/zero", "/", "2.5", "1e4"};

struct Mutator {
  std::mt19937_64 rng;
  size_t pick(size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; }

  std::string operator()(std::string s) {
    const int ops = 1 + static_cast<int>(pick(4));
    for (int k = 0; k < ops; ++k) {
      const size_t pos = pick(s.size() + 1);
      switch (pick(9)) {
        case 0:  // flip a bit
          if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << pick(8));
          break;
        case 1:  // set a byte to an edge value
          if (!s.empty()) s[pick(s.size())] = "\x00\xff\x7f\x80\x01\x20"[pick(6)];
          break;
        case 2:  // insert random bytes
          for (size_t n = 1 + pick(8); n; --n) s.insert(s.begin() + static_cast<long>(pos), static_cast<char>(rng()));
          break;
        case 3:  // delete a range
          s.erase(pos, 1 + pick(16));
          break;
        case 4: {  // duplicate a range
          const std::string piece = s.substr(pos, 1 + pick(64));
          s.insert(pick(s.size() + 1), piece);
          break;
        }
        case 5:  // truncate
          s.resize(pick(s.size() + 1));
          break;
        case 6: {  // replace a number with an edge value
          size_t p = s.find_first_of("0123456789", pos);
          if (p == std::string::npos) p = s.find_first_of("0123456789");
          if (p == std::string::npos) break;
          size_t e = s.find_first_not_of("0123456789.eE+-", p);
          s.replace(p, (e == std::string::npos ? s.size() : e) - p, kTokens[pick(std::size(kTokens))]);
          break;
        }
        case 7:  // insert a token
          s.insert(pos, kTokens[pick(std::size(kTokens))]);
          break;
        default: {  // overwrite 4 bytes with an edge 32-bit value (binary headers)
          if (s.size() < 4) break;
          const uint32_t v[] = {0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000, 0xFFFF};
          const uint32_t x = v[pick(std::size(v))];
          std::memcpy(&s[pick(s.size() - 3)], &x, 4);
        }
      }
    }
    return s;
  }
};

struct Counts {
  int64_t inputs = 0, accepted = 0, rejected = 0, bad_errors = 0;
};

Counts run_target(const Target& t, int64_t iterations, uint64_t seed) {
  Mutator mutate{std::mt19937_64(seed ^ std::hash<std::string>{}(t.name))};
  Counts c;
  for (int64_t i = 0; i < iterations; ++i) {
    const std::string& base = t.seeds[static_cast<size_t>(i) % t.seeds.size()];
    const std::string input = i < static_cast<int64_t>(t.seeds.size()) ? base : mutate(base);
    ++c.inputs;
    std::string bad;
    try {
      t.run(input);
      ++c.accepted;
    } catch (const std::runtime_error& e) {
      ++c.rejected;
      const std::string msg = e.what();
      if (msg.find(t.file_shown) == std::string::npos) bad = "does not name " + t.file_shown + ": " + msg;
    } catch (const std::invalid_argument& e) {
      ++c.rejected;
      const std::string msg = e.what();
      if (msg.find(t.file_shown) == std::string::npos) bad = "does not name " + t.file_shown + ": " + msg;
    } catch (const std::exception& e) {
      bad = std::string("unexpected exception type: ") + e.what();
    } catch (...) {
      bad = "non-standard exception";
    }
    if (bad.empty() && i < static_cast<int64_t>(t.seeds.size()) && c.accepted != i + 1)
      bad = "seed " + std::to_string(i) + " is rejected (fix the seed: the target would fuzz nothing)";
    if (!bad.empty()) {
      if (++c.bad_errors <= 5) {
        std::fprintf(stderr, "[%s] input %lld: %s\n", t.name.c_str(), static_cast<long long>(i),
                     bad.substr(0, 300).c_str());
        write(fs::path("fuzz-failure-" + t.name + "-" + std::to_string(i)), input);
      }
    }
  }
  return c;
}

// ---- seeds -------------------------------------------------------------------------------------------------------
std::string safetensors_seed(const fs::path& dir) {
  const fs::path p = dir / "seed.safetensors";
  st::save(p.string(),
           {{"a.weight", at::arange(6, at::kFloat).reshape({2, 3})}, {"b", at::arange(4, at::kLong)},
            {"c.half", at::ones({3}, at::kHalf)}, {"flag", at::zeros({2}, at::kBool)}},
           {{"format", "pt"}});
  return read(p);
}

std::vector<std::string> image_seeds() {
  cv::Mat rgb(23, 37, CV_8UC3), gray(19, 11, CV_8UC1), rgba(9, 13, CV_8UC4), deep(7, 5, CV_16UC3);
  cv::randu(rgb, 0, 255), cv::randu(gray, 0, 255), cv::randu(rgba, 0, 255), cv::randu(deep, 0, 65535);
  std::vector<std::string> out;
  auto enc = [&](const char* ext, const cv::Mat& m) {
    std::vector<uint8_t> buf;
    if (cv::imencode(ext, m, buf)) out.emplace_back(buf.begin(), buf.end());
  };
  enc(".png", rgb), enc(".png", gray), enc(".png", rgba), enc(".png", deep), enc(".jpg", rgb), enc(".jpg", gray);
  enc(".webp", rgb), enc(".bmp", rgb);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t iterations = 2000;
  uint64_t seed = 1;
  std::string source, only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    int64_t n = 0;
    if (k == "--iterations" && util::parse_int(v, n) && n > 0) iterations = n;
    else if (k == "--seed" && util::parse_int(v, n) && n >= 0) seed = static_cast<uint64_t>(n);
    else if (k == "--source") source = v;
    else if (k == "--only") only = v;
    else {
      std::fprintf(stderr, "usage: phantom_fuzz --source DIR [--iterations N] [--seed S] [--only NAME]\n");
      return 2;
    }
  }
  if (source.empty() || !fs::exists(fs::path(source) / "configs/demo.yaml")) {
    std::fprintf(stderr, "phantom_fuzz: --source must be the repository root\n");
    return 2;
  }
  const fs::path dir = fs::temp_directory_path() / ("phantom-fuzz-" + std::to_string(::getpid()));
  fs::create_directories(dir / "images");
  struct Cleanup {
    fs::path d;
    ~Cleanup() { std::error_code ec; fs::remove_all(d, ec); }
  } cleanup{dir};
  // Mutated headers may declare huge images: keep decoding small (the cap is part of what is tested).
  data::set_max_image_pixels(1 << 20);

  // Readers log what they accept and skip; thousands of inputs would bury the counts (PHANTOM_LOG_LEVEL overrides).
  ::setenv("PHANTOM_LOG_LEVEL", "error", 0);
  log::init();

  const auto images = image_seeds();
  write(dir / "images/a.png", images[0]);
  write(dir / "images/b.jpg", images[4]);
  std::string tiny_png;  // inline base64 images of the benchmark TSVs: small, so mutations land in the table too
  {
    cv::Mat m(3, 4, CV_8UC3, cv::Scalar(10, 200, 30));
    std::vector<uint8_t> buf;
    cv::imencode(".png", m, buf);
    tiny_png.assign(buf.begin(), buf.end());
  }

  std::vector<Target> targets;
  {  // safetensors: the header (JSON + offsets) and the u64 length in front of it
    Target t{"safetensors", {safetensors_seed(dir)}, nullptr, "in.safetensors"};
    const fs::path p = dir / "in.safetensors";
    t.run = [p](const std::string& s) {
      write(p, s);
      st::File f(p.string());
      for (const auto& n : f.names()) {
        const auto& info = f.info(n);
        (void)info;
        at::Tensor x = f.get(n).contiguous();
        const auto* p = static_cast<const uint8_t*>(x.data_ptr());
        volatile uint8_t sum = 0;
        for (size_t b = 0; b < x.nbytes(); ++b) sum = sum + p[b];  // touches every byte the header claims
      }
    };
    targets.push_back(std::move(t));
  }
  {  // annotations: JSONL and JSON-array conversations, preference triples, skip and fail policies
    const std::string conv_jsonl =
        "{\"id\": \"1\", \"image\": \"a.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nWhat?\"}, "
        "{\"from\": \"gpt\", \"value\": \"A shoe.\"}]}\n"
        "{\"id\": 2, \"image\": [\"a.png\", \"b.jpg\"], \"conversations\": [{\"role\": \"user\", \"content\": "
        "\"<image><image> Both?\"}, {\"role\": \"assistant\", \"content\": \"Yes.\"}]}\n";
    const std::string conv_array =
        "[\n  {\"id\": \"1\", \"image\": \"a.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image> Hi\"},"
        " {\"from\": \"gpt\", \"value\": \"Hello\"}]},\n  {\"id\": \"2\", \"conversations\": [{\"from\": \"human\", "
        "\"value\": \"No image\"}, {\"from\": \"gpt\", \"value\": \"Fine\"}]}\n]\n";
    const std::string pref_jsonl =
        "{\"id\": \"p1\", \"image\": \"a.png\", \"question\": \"<image> Which?\", \"chosen\": \"A\", \"rejected\": [\"B\", "
        "\"C\"]}\n{\"id\": \"p2\", \"question\": \"Q\", \"chosen\": \"yes\", \"rejected\": \"no\"}\n";
    for (const std::string format : {"conversations", "preference"}) {
      Target t{"annotations-" + format, {}, nullptr, "in.jsonl"};
      t.seeds = format == "preference" ? std::vector<std::string>{pref_jsonl}
                                       : std::vector<std::string>{conv_jsonl, conv_array};
      const fs::path p = dir / "in.jsonl";
      const fs::path root = dir / "images";
      int64_t* n = new int64_t(0);  // alternates the policy (lives as long as the process)
      t.run = [p, root, format, n](const std::string& s) {
        write(p, s);
        data::DataConfig cfg;
        cfg.format = format;
        cfg.image_root = root.string();
        cfg.on_error = (++*n % 2) ? "skip" : "fail";
        data::SkipCounts skipped;
        (void)data::read_annotations(p.string(), cfg, skipped, 7);
      };
      targets.push_back(std::move(t));
    }
    Target meta{"annotations-internvl_meta", {}, nullptr, "meta.json"};
    write(dir / "part.jsonl", conv_jsonl);
    meta.seeds = {"{\"set_a\": {\"root\": \"images\", \"annotation\": \"part.jsonl\", \"repeat_time\": 1.5},\n"
                  " \"set_b\": {\"annotation\": \"part.jsonl\"}}\n"};
    const fs::path mp = dir / "meta.json";
    const fs::path root = dir / "images";
    meta.run = [mp, root](const std::string& s) {
      write(mp, s);
      data::DataConfig cfg;
      cfg.format = "internvl_meta";
      cfg.image_root = root.string();
      cfg.on_error = "skip";
      data::SkipCounts skipped;
      (void)data::read_annotations(mp.string(), cfg, skipped, 7);
    };
    targets.push_back(std::move(meta));
  }
  {  // YAML run config: configs/demo.yaml and a small stage list
    Target t{"yaml", {read(fs::path(source) / "configs/demo.yaml"),
                      "run:\n  name: x\n  seed: 7\noptim:\n  lr: 1e-4\nstages:\n  - name: a\n    loss: sft\n    "
                      "trainable: ['.*']\n    max_steps: 3\n"},
             nullptr, "in.yaml"};
    const fs::path p = dir / "in.yaml";
    t.run = [p](const std::string& s) {
      write(p, s);
      try {
        recipe::RunConfig c = recipe::load_run_config(p.string(), {});
        (void)recipe::resolved_yaml(c, p.string(), {});
      } catch (const config::ConfigError& e) {
        // Cross-key checks name the key, not the file: rethrow with the file so the naming check applies.
        const std::string msg = e.what();
        if (msg.find("in.yaml") == std::string::npos && msg.find("config error: ") == 0)
          throw std::runtime_error("in.yaml: " + msg);
        throw;
      }
    };
    targets.push_back(std::move(t));
  }
  {  // HF config.json
    ModelConfig mc;
    mc.llm.hidden_size = 64, mc.llm.num_heads = 4, mc.llm.num_kv_heads = 2;
    Target t{"hf-config", {phantom_config_json(mc).dump(2), llm_config_json(mc.llm).dump(2)}, nullptr, "config.json"};
    const fs::path d = dir / "hf";
    fs::create_directories(d);
    t.run = [d](const std::string& s) {
      write(d / "config.json", s);
      ModelConfig cfg;
      (void)read_hf_config(d.string(), cfg);
    };
    targets.push_back(std::move(t));
  }
  {  // images: PNG (RGB, gray, RGBA, 16-bit), JPEG (RGB, gray), WebP, BMP
    Target t{"images", images, nullptr, "img.bin"};
    const fs::path p = dir / "img.bin";
    t.run = [p](const std::string& s) {
      write(p, s);
      data::RgbImage img = data::load_image(p.string());
      if (img.pixels.size() != size_t(img.width) * size_t(img.height) * 3) throw std::logic_error("bad image size");
    };
    targets.push_back(std::move(t));
  }

  for (auto* more : {&fuzz::tokenizer_targets, &fuzz::checkpoint_targets})
    for (auto& t : (*more)(dir)) targets.push_back(std::move(t));
  for (auto& t : fuzz::eval_targets(dir, dir / "images", tiny_png)) targets.push_back(std::move(t));

  int64_t total = 0, bad = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& t : targets) {
    if (!only.empty() && t.name.find(only) == std::string::npos) continue;
    const auto c = run_target(t, iterations, seed);
    std::printf("%-30s %6lld inputs: %6lld accepted, %6lld rejected cleanly, %lld bad errors\n", t.name.c_str(),
                static_cast<long long>(c.inputs), static_cast<long long>(c.accepted),
                static_cast<long long>(c.rejected), static_cast<long long>(c.bad_errors));
    total += c.inputs, bad += c.bad_errors;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("fuzz: %lld inputs, 0 crashes, %lld bad errors (%.1f s)\n", static_cast<long long>(total),
              static_cast<long long>(bad), s);
  return bad ? 1 : 0;
}
