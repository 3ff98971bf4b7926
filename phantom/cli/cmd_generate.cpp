// phantom generate --model DIR --image PATH --prompt "..."   (streams the answer)
// phantom generate --model DIR --input questions.jsonl        ({"id", "image", "prompt"} per line)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/image.h"
#include "data/tokenizer.h"
#include "phantom/checkpoint.h"
#include "phantom/cli/args.h"
#include "phantom/cli/commands.h"
#include "phantom/runtime.h"
#include "trainers/evaluate.h"

namespace phantom::cli {
namespace fs = std::filesystem;

static const char* kGenerateHelp =
    "usage: phantom generate --model DIR (--prompt TEXT [--image PATH ...] | --input FILE.jsonl) [options]\n\n"
    "  --model DIR          a Phantom checkpoint directory (config.json, safetensors, tokenizer)\n"
    "  --tokenizer PATH     tokenizer.json / tokenizer.model (default: the one in --model)\n"
    "  --image PATH         an image for the prompt (repeat for several; <image> in the prompt marks where)\n"
    "  --prompt TEXT        the question\n"
    "  --input FILE         JSONL with {\"id\", \"prompt\", \"image\"} per line; answers go to stdout as JSONL\n"
    "  --max-new-tokens N   (default 128)      --num-beams K   beam search (default 1: greedy)\n"
    "  --do-sample          sample instead     --temperature T, --top-p P, --top-k K, --seed S\n"
    "  --max-tiles N        dynamic tiling limit (default 6)   --threads N   CPU threads\n";


Loaded load_for_inference(const Args& a) {
  Loaded l;
  const std::string dir = a.require("model");
  std::string tok_path = a.get("tokenizer");
  if (tok_path.empty()) tok_path = dir;
  l.tok = data::load_tokenizer(tok_path);
  ModelConfig cfg;
  l.model = load_phantom(dir, cfg);
  l.model->to(pick_device(a.get("device", "auto")));
  if (l.model->image_token_index < 0) {
    auto id = l.tok->token_to_id(l.model->cfg.image_token);
    if (!id) throw std::runtime_error("the tokenizer has no " + l.model->cfg.image_token + " token");
    l.model->image_token_index = *id;
  }
  l.enc = std::make_unique<data::SampleEncoder>(
      *l.tok, data::ChatTemplate::resolve("auto", l.model->cfg.llm.family),
      data::ImageTokens::from_tokenizer(*l.tok, l.model->tokens_per_tile()));
  l.tiles.tile = static_cast<int>(l.model->cfg.vision.image_size);
  l.tiles.max_num = std::stoi(a.get("max-tiles", "6"));
  return l;
}

GenerationConfig generation_options(const Args& a) {
  GenerationConfig gc;
  gc.max_new_tokens = std::stoll(a.get("max-new-tokens", "128"));
  gc.num_beams = std::stoll(a.get("num-beams", "1"));
  gc.do_sample = a.has("do-sample");
  gc.temperature = std::stod(a.get("temperature", "1.0"));
  gc.top_p = std::stod(a.get("top-p", "1.0"));
  gc.top_k = std::stoll(a.get("top-k", "0"));
  gc.seed = std::stoull(a.get("seed", "0"));
  return gc;
}

int cmd_generate(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2,
                      {"model", "tokenizer", "prompt", "input", "max-new-tokens", "num-beams", "temperature", "top-p",
                       "top-k", "seed", "max-tiles", "threads", "device", "image"},
                      {"help", "do-sample"});
  if (a.has("help")) {
    std::fputs(kGenerateHelp, stdout);
    return 0;
  }
  // --image may repeat: collect every occurrence.
  std::vector<std::string> images;
  for (int i = 2; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--image") images.push_back(argv[i + 1]);
  set_threads(std::stoll(a.get("threads", "0")));
  auto l = load_for_inference(a);
  auto gc = generation_options(a);

  std::vector<eval::Question> qs;
  if (a.has("input")) {
    std::ifstream in(a.get("input"));
    if (!in) throw std::runtime_error("cannot open " + a.get("input"));
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const std::exception& e) {
        throw std::runtime_error(a.get("input") + ":" + std::to_string(n) + ": malformed JSON");
      }
      eval::Question q;
      q.id = j.value("id", std::to_string(n));
      q.prompt = j.value("prompt", j.value("question", ""));
      if (j.contains("image") && j["image"].is_string()) q.images.push_back(data::load_image(j["image"].get<std::string>()));
      qs.push_back(std::move(q));
    }
    eval::answer_questions(*l.model, *l.tok, *l.enc, l.tiles, qs, gc, 8, [](const eval::Answer& ans) {
      std::printf("%s\n", nlohmann::json{{"id", ans.id}, {"answer", ans.text}}.dump().c_str());
      std::fflush(stdout);
    });
    return 0;
  }
  eval::Question q;
  q.id = "0";
  q.prompt = a.require("prompt");
  for (auto& p : images) q.images.push_back(data::load_image(p));
  if (gc.num_beams > 1) {  // beam search finishes all at once
    auto ans = eval::answer_questions(*l.model, *l.tok, *l.enc, l.tiles, {q}, gc, 1);
    std::printf("%s\n", ans[0].text.c_str());
    return 0;
  }
  // Greedy / sampling: stream the text as tokens arrive.
  std::vector<int32_t> so_far;
  std::string printed;
  auto on_tokens = [&](const std::vector<int64_t>& step) {
    if (step.empty() || step[0] < 0) return;
    so_far.push_back(static_cast<int32_t>(step[0]));
    const std::string text = l.tok->decode(so_far, true);
    if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0) {
      std::fputs(text.c_str() + printed.size(), stdout);
      std::fflush(stdout);
      printed = text;
    }
  };
  std::vector<int64_t> counts;
  std::vector<at::Tensor> px;
  for (auto& img : q.images) {
    px.push_back(data::preprocess_image(img, l.tiles));
    counts.push_back(px.back().size(0));
  }
  auto ids = l.enc->prompt(q.prompt, counts);
  torch::NoGradGuard ng;
  l.model->eval();
  const auto dev = l.model->language_model->body->parameters().front().device();
  auto t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0).to(dev);
  auto embeds = l.model->embed_inputs(t, px.empty() ? at::Tensor() : torch::cat(px, 0).to(dev));
  if (auto e = l.tok->token_to_id(l.enc->chat_template().assistant_end)) gc.eos_token_ids.push_back(*e);
  generate(*l.model->language_model, embeds, torch::ones_like(t), gc, on_tokens);
  std::printf("\n");
  return 0;
}

}  // namespace phantom::cli
