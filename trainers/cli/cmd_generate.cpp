// phantom generate --model DIR --image PATH --prompt "..."   (streams the answer)
// phantom generate --model DIR --input questions.jsonl        ({"id", "image", "prompt"} per line)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "data/images/image.h"
#include "data/tokenizers/tokenizer.h"
#include "phantom/io/checkpoint.h"
#include "trainers/cli/flags.h"
#include "trainers/cli/args.h"
#include "trainers/cli/commands.h"
#include "phantom/model/runtime.h"
#include "phantom/util/logf.h"
#include "phantom/util/launch_env.h"
#include "trainers/eval/answer.h"
#include "trainers/recipe/model_setup.h"
#include "trainers/eval/answer_stream.h"

namespace phantom::cli {
namespace fs = std::filesystem;

static const char* kGenerateHelp =
    "usage: phantom generate --model DIR (--prompt TEXT [--image PATH ...] | --input FILE.jsonl) [options]\n\n"
    "  --model DIR          a Phantom checkpoint directory (config.json, safetensors, tokenizer)\n"
    "  --tokenizer PATH     tokenizer.json / tokenizer.model (default: the one in --model)\n"
    "  --image PATH         an image for the prompt (repeat for several; <image> in the prompt marks where)\n"
    "  --prompt TEXT        the question\n"
    "  --input FILE         JSONL, {\"id\", \"prompt\", \"image\" or \"images\": [...]} per line; answers as JSONL\n"
    "                       {\"id\", \"answer\"} to stdout, or appended to --out FILE after each batch (a rerun\n"
    "                       skips the ids already there); images relative to --image-root (default: the file's\n"
    "                       folder); bad rows named by line and id (--skip-bad-rows answers the others)\n"
    "  --batch-size B       --input rows generated together (default 8)\n"
    "  --max-new-tokens N   (default 128)      --num-beams K   beam search (default 1: greedy)\n"
    "  --do-sample          sample instead     --temperature T, --top-p P, --top-k K, --seed S\n"
    "  --threads N          CPU threads\n"
    "  The prompt is built as the model was trained (its config.json \"phantom_prompt\"; an official checkpoint:\n"
    "  chat template by family, 6 tiles, thumbnail, prepend); each flag below overrides one setting, logged:\n"
    "  --chat-template T    chatml | phi3      --max-tiles N   dynamic tiling limit\n"
    "  --thumbnail B        true | false       --image-placement R   prepend | prepend_newline\n"
    "  --multi-image R      interleaved (each <image> of the prompt where it is written; images without one\n"
    "                       start the prompt) | first_turn (every image first)\n";


Loaded load_for_inference(const Args& a) {
  // The trainer's own builder, with the prompt saved in the model's config.json (chat template, tiling, image
  // rules); a flag replaces a saved setting and the replacement is logged.
  recipe::ModelSpec spec;
  spec.model.path = a.require("model");
  if (std::error_code ec; fs::is_regular_file(spec.model.path, ec))
    throw UsageError("--model " + spec.model.path + " is a file; it takes the checkpoint directory that holds config.json, "
                     "the weights and the tokenizer (here: --model " + fs::path(spec.model.path).parent_path().string() + ")");
  spec.tokenizer = a.get("tokenizer");
  spec.device = pick_device(a.get("device", "auto"), util::launch_position().local_rank);  // torchrun: a GPU per local rank
  for (auto [flag, field] : {std::pair<const char*, const char*>{"chat-template", "chat_template"},
                             {"max-tiles", "max_tiles"}, {"thumbnail", "use_thumbnail"}, {"image-placement", "image_placement"},
                             {"multi-image", "multi_image"}})
    if (a.has(flag)) spec.prompt_overrides[field] = a.get(flag);
  auto m = recipe::build_model(spec);
  Loaded l;
  l.model = m.model;
  l.tok = std::move(m.tok);
  l.enc = std::move(m.enc);
  l.tiles = m.tiles;
  return l;
}

// "" or what is wrong with the generation flags: sampling at temperature 0 divides the logits by zero (torch then
// reports "probability tensor contains either inf, nan..."), top_p outside (0, 1], ...
static std::string generation_config_problem(const GenerationConfig& c) {
  if (c.max_new_tokens < 1) return "--max-new-tokens must be positive";
  if (c.min_new_tokens < 0) return "min_new_tokens must be >= 0";
  if (c.num_beams < 1) return "--num-beams must be >= 1";
  if (c.top_k < 0) return "--top-k must be >= 0 (0: off)";
  if (!(c.top_p > 0 && c.top_p <= 1)) return "--top-p must be in (0, 1] (1: off)";
  if (!std::isfinite(c.temperature) || c.temperature < 0) return "--temperature must be a non-negative number";
  if (c.do_sample && c.temperature == 0)
    return "--do-sample with --temperature 0 divides the logits by zero; for deterministic output drop --do-sample "
           "(greedy decoding), or use a temperature > 0";
  if (c.do_sample && c.num_beams > 1) return "--do-sample and --num-beams > 1 cannot be combined";
  return "";
}

GenerationConfig generation_options(const Args& a) {
  GenerationConfig gc;
  gc.max_new_tokens = int_flag(a, "max-new-tokens", 128, 0);
  gc.num_beams = int_flag(a, "num-beams", 1, 1, 64);
  gc.do_sample = a.has("do-sample");
  gc.temperature = number_flag(a, "temperature", 1.0, 0);
  gc.top_p = number_flag(a, "top-p", 1.0, 0, 1);
  gc.top_k = int_flag(a, "top-k", 0, 0);
  gc.seed = static_cast<uint64_t>(int_flag(a, "seed", 0, 0));
  if (std::string p = generation_config_problem(gc); !p.empty()) throw UsageError(p);  // before loading the model
  return gc;
}

// --input FILE.jsonl: every row answered in batches; answers as JSONL to --out (appended after every batch, ids
// already there skipped, so an interrupted run resumes) or to stdout. Bad rows are named by line and id.
static int generate_jsonl(const Args& a, Loaded& l, const GenerationConfig& gc) {
  const std::string path = a.get("input");
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  const fs::path root = a.has("image-root") ? fs::path(a.get("image-root")) : fs::path(path).parent_path();
  const std::string out_path = a.get("out");
  std::set<std::string> done;
  if (!out_path.empty()) {
    std::ifstream prev(out_path);
    std::string line;
    while (std::getline(prev, line)) {
      try {
        done.insert(nlohmann::json::parse(line).at("id").get<std::string>());
      } catch (const std::exception&) {  // a line cut by an interruption: that row is answered again
      }
    }
  }
  std::vector<eval::Question> qs;
  std::vector<std::vector<std::string>> image_files;  // per question
  std::vector<std::string> where, bad;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    eval::Question q;
    q.id = "line " + std::to_string(n);
    try {
      const auto j = nlohmann::json::parse(line);
      if (!j.is_object()) throw std::runtime_error("not a JSON object");
      if (j.contains("id")) q.id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
      if (done.count(q.id)) continue;
      q.prompt = j.contains("prompt") ? j.at("prompt").get<std::string>() : j.value("question", "");
      if (q.prompt.empty()) throw std::runtime_error("no \"prompt\"");
      std::vector<std::string> images;
      if (j.contains("image") && !j["image"].is_null()) images.push_back(j["image"].get<std::string>());
      if (j.contains("images"))
        for (const auto& p : j["images"]) images.push_back(p.get<std::string>());
      std::vector<std::string> files;
      for (const auto& p : images) {  // checked now, decoded per batch (a large file's images never all in memory)
        const fs::path f = fs::path(p).is_absolute() ? fs::path(p) : root / p;
        if (!fs::is_regular_file(f)) throw std::runtime_error("missing image " + f.string());
        files.push_back(f.string());
      }
      image_files.push_back(std::move(files));
      where.push_back(path + ":" + std::to_string(n) + " (id " + q.id + ")");
    } catch (const std::exception& e) {
      std::string msg = e.what();
      bad.push_back(path + ":" + std::to_string(n) + " (id " + q.id + "): " + msg.substr(0, msg.find('\n')));
      continue;
    }
    qs.push_back(std::move(q));
  }
  for (const auto& b : bad) log::warn("{}", b);
  if (!bad.empty() && !a.has("skip-bad-rows"))
    throw std::runtime_error(std::to_string(bad.size()) + " bad rows, first " + bad.front() +
                             " (--skip-bad-rows answers the others)");
  if (!done.empty()) log::info("{}: {} rows already answered in {}", path, done.size(), out_path);
  std::ofstream out;
  if (!out_path.empty()) {
    out.open(out_path, std::ios::app);
    if (!out) throw std::runtime_error("cannot write " + out_path);
  }
  const int64_t bs = int_flag(a, "batch-size", 8, 1);
  for (size_t b0 = 0; b0 < qs.size(); b0 += static_cast<size_t>(bs)) {
    std::vector<eval::Question> batch;
    for (size_t i = b0; i < std::min(qs.size(), b0 + static_cast<size_t>(bs)); ++i) {
      eval::Question q = qs[i];
      try {
        for (const auto& f : image_files[i]) q.images.push_back(data::load_image(f));
      } catch (const std::exception& e) {
        std::string msg = e.what();
        msg = where[i] + ": " + msg.substr(0, msg.find('\n'));
        if (!a.has("skip-bad-rows")) throw std::runtime_error(msg);
        log::warn("{}; skipped", msg);
        continue;
      }
      batch.push_back(std::move(q));
    }
    if (batch.empty()) continue;
    std::string text;
    for (const auto& ans : eval::answer_batch(*l.model, *l.tok, *l.enc, l.tiles, batch, gc))
      text += nlohmann::json{{"id", ans.id}, {"answer", ans.text}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (out_path.empty()) {
      std::fputs(text.c_str(), stdout);
      std::fflush(stdout);
    } else {
      out << text;
      out.flush();
    }
  }
  return 0;
}

int cmd_generate(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2,
                      {"model", "tokenizer", "prompt", "input", "max-new-tokens", "num-beams", "temperature", "top-p",
                       "top-k", "seed", "max-tiles", "threads", "device", "image", "out", "batch-size", "image-root",
                       "image-placement", "multi-image", "chat-template", "thumbnail"},
                      {"help", "do-sample", "skip-bad-rows"});
  if (a.has("help")) {
    std::fputs(kGenerateHelp, stdout);
    return 0;
  }
  // --image may repeat: collect every occurrence.
  std::vector<std::string> images;
  for (int i = 2; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--image") images.push_back(argv[i + 1]);
  set_threads(threads_flag(a));
  auto gc = generation_options(a);  // flags checked before the model is loaded
  auto l = load_for_inference(a);

  if (a.has("input")) return generate_jsonl(a, l, gc);
  eval::Question q;
  q.id = "0";
  q.prompt = a.require("prompt");
  for (auto& p : images) q.images.push_back(data::load_image(p));
  if (gc.num_beams > 1) {  // beam search finishes all at once
    auto ans = eval::answer_questions(*l.model, *l.tok, *l.enc, l.tiles, {q}, gc, 1);
    std::printf("%s\n", ans[0].text.c_str());
    return 0;
  }
  // Greedy / sampling: stream the text as tokens arrive (the same text --input writes).
  eval::AnswerStream stream(*l.tok, [](const std::string& piece) {
    std::fputs(piece.c_str(), stdout);
    std::fflush(stdout);
  });
  auto on_tokens = [&](const std::vector<int64_t>& step) {
    if (!step.empty()) stream.add(step[0]);
  };
  std::vector<int64_t> counts;
  std::vector<at::Tensor> px;
  for (auto& img : q.images) {
    px.push_back(data::preprocess_image(img, l.tiles));
    counts.push_back(px.back().size(0));
  }
  auto ids = l.enc->prompt(q.prompt, counts);
  std::string id_list;
  for (auto id : ids) id_list += std::to_string(id) + " ";
  log::debug("prompt ids ({}): {}", ids.size(), id_list);
  torch::NoGradGuard ng;
  l.model->eval();
  const auto dev = l.model->language_model->body->parameters().front().device();
  auto t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0).to(dev);
  auto embeds = l.model->embed_inputs(t, px.empty() ? at::Tensor() : torch::cat(px, 0).to(dev));
  gc.eos_token_ids = eval::stop_token_ids(*l.model, *l.tok, *l.enc);
  generate(*l.model->language_model, embeds, torch::ones_like(t), gc, on_tokens);
  stream.finish();
  std::printf("\n");
  return 0;
}

}  // namespace phantom::cli
