// Start points (docs/start-points.md): InternVL2 remote-code checkpoints for the three backbones, the
// transformers-native InternVL layout (old and new tensor names) and a bare LLM + InternViT, each written by the
// upstream Python classes (tests/tools/startpoint_reference.py) and compared on logits and greedy ids.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/annotations.h"
#include "data/chat_template.h"
#include "data/tokenizers/tokenizer.h"
#include "phantom/io/checkpoint.h"
#include "phantom/io/hf_config.h"
#include "phantom/model/generate.h"
#include "tests/helpers.h"
#include "tests/tiny.h"
#include "trainers/recipe/start_point.h"

using namespace phantom;
using phantom::test::TempDir;

namespace {

StateDict start_reference(const TempDir& t, const std::string& args) {
  const std::string cmd = std::string(PHANTOM_PYTHON) + " " + test::source_path("tests/tools/startpoint_reference.py") +
                          " " + args + " --out " + t.str() + " > " + t.str("ref.log") + " 2>&1";
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
  return read_checkpoint_tensors(t.str("expected.safetensors"));
}

}  // namespace

TEST_CASE("start points: InternVL2 remote code and transformers-native InternVL load with the reference logits and greedy ids") {
  for (const char* family : {"qwen2", "phi3", "internlm2"}) {
    TempDir t;
    auto ref = start_reference(t, std::string("internvl --family ") + family);
    for (const char* layout : {"remote", "native", "native_new"}) {
      INFO(family << " " << layout);
      ModelConfig cfg;
      cfg.phantom = "off";  // the upstream network exactly (Phantom tensors: below)
      LoadReport rep;
      auto model = load_phantom(t.str(layout), cfg, &rep);
      CHECK(rep.unexpected.empty());
      CHECK(rep.created.empty());
      if (model->image_token_index < 0) model->image_token_index = 5;  // remote code: from the tokenizer
      torch::NoGradGuard ng;
      model->eval();
      ModelInputs in;
      in.input_ids = ref["ids"], in.pixel_values = ref["pixels"];
      auto logits = model->forward(in);
      const double diff = (logits - ref["logits"]).abs().max().item<double>();
      INFO("max |logits - transformers| " << diff);
      CHECK(diff < 1e-4);
      GenerationConfig gc;
      gc.max_new_tokens = 8;
      auto embeds = model->embed_inputs(ref["ids"], ref["pixels"]);
      auto out = generate(*model->language_model, embeds, torch::ones_like(ref["ids"]), gc);
      const bool same = torch::tensor(out.tokens[0]).equal(ref["greedy"][0]);
      CHECK(same);
      std::printf("start point %-9s %-10s: max |logits - transformers| %.2e, 8 greedy ids %s\n", family, layout, diff,
                  same ? "equal" : "DIFFER");
    }
    // With the Phantom dimension on, its tensors are created and listed; zero XAttn is the upstream model again.
    ModelConfig cfg;
    LoadReport rep;
    auto ph = load_phantom(t.str("remote"), cfg, &rep);
    CHECK(rep.created.size() == 2 * (12 + 4));  // 2 layers x (3 XAttn x 4 Linears + 2 gates x weight, bias)
    ph->image_token_index = 5;
    torch::NoGradGuard ng;
    // Created as the official classes build them fresh (the LLM's _init_weights): weights N(0, 0.02), biases zero.
    std::vector<at::Tensor> weights;
    for (auto& [name, w] : module_state_dict(*ph))
      if (std::find(rep.created.begin(), rep.created.end(), name) != rep.created.end()) {
        if (w.dim() == 2) weights.push_back(w.flatten());
        else CHECK(w.abs().max().item<double>() == 0.0);
      }
    const auto all = torch::cat(weights);
    INFO("fresh Phantom weights: " << all.numel() << " values, mean " << all.mean().item<double>() << ", std " << all.std().item<double>());
    CHECK(std::abs(all.std().item<double>() - 0.02) < 0.001);
    CHECK(std::abs(all.mean().item<double>()) < 0.001);
    // ...and so are they in a model built from scratch.
    PhantomModel fresh(ph->cfg);
    init_weights(*fresh);
    std::vector<at::Tensor> fresh_w;
    for (auto& p : fresh->named_parameters())
      if (p.key().find("_phantom") != std::string::npos) {
        if (p.value().dim() == 2) fresh_w.push_back(p.value().flatten());
        else CHECK(p.value().abs().max().item<double>() == 0.0);
      }
    CHECK(std::abs(torch::cat(fresh_w).std().item<double>() - 0.02) < 0.001);
    for (auto& p : ph->named_parameters())
      if (p.key().find("xattn_") != std::string::npos) p.value().zero_();
    ph->eval();
    ModelInputs in;
    in.input_ids = ref["ids"], in.pixel_values = ref["pixels"];
    CHECK((ph->forward(in) - ref["logits"]).abs().max().item<double>() < 1e-4);
  }
}

TEST_CASE("start points: omitted config keys take the upstream defaults (InternVisionConfig, Qwen2Config, eos)") {
  TempDir t;
  // InternVLChatConfig's pixel shuffle default is v1, which changes the network: an omitted ps_version is refused.
  t.file("v1/config.json", R"({"llm_config": {"architectures": ["Qwen2ForCausalLM"]}, "vision_config": {}})");
  ModelConfig v1;
  CHECK_THROWS_WITH(read_hf_config(t.str("v1"), v1), Catch::Contains("ps_version 'v1' (omitted: InternVLChatConfig's default)"));
  t.file("vlm/config.json", R"({"llm_config": {"architectures": ["Qwen2ForCausalLM"], "eos_token_id": 7},
                                "vision_config": {"hidden_size": 32, "num_attention_heads": 4}, "ps_version": "v2"})");
  t.file("vlm/generation_config.json", R"({"eos_token_id": [7, 9]})");
  ModelConfig c;
  auto info = read_hf_config(t.str("vlm"), c);
  CHECK(info.layout == "internvl_chat");
  // InternVisionConfig: RMSNorm, q/k norm, no qkv bias, 224 px, 14 px patches, 48 layers, width 12800 MLP
  CHECK(c.vision.norm_type == "rms_norm");
  CHECK(c.vision.qk_normalization);
  CHECK_FALSE(c.vision.qkv_bias);
  CHECK(c.vision.image_size == 224);
  CHECK(c.vision.num_layers == 48);
  CHECK(c.vision.intermediate_size == 12800);
  // Qwen2Config: untied head, its shape defaults, eos from config.json and generation_config.json
  CHECK_FALSE(c.llm.tie_word_embeddings);
  CHECK(c.llm.hidden_size == 4096);
  CHECK(c.llm.vocab_size == 151936);
  CHECK(c.llm.max_position_embeddings == 32768);
  CHECK(c.llm.eos_token_ids == std::vector<int64_t>{7, 9});
  // transformers' InternVLVisionConfig has other defaults: LayerNorm, no q/k norm, no bias, 448 px.
  t.file("hf/config.json", R"({"model_type": "internvl", "text_config": {"model_type": "qwen2"},
                               "vision_config": {"image_size": [448, 448]}})");
  ModelConfig h;
  CHECK(read_hf_config(t.str("hf"), h).layout == "internvl_hf");
  CHECK(h.vision.norm_type == "layer_norm");
  CHECK_FALSE(h.vision.qk_normalization);
  CHECK_FALSE(h.vision.qkv_bias);
  CHECK(h.vision.image_size == 448);
  CHECK(h.image_token_index == 151667);
  // Settings that change the network are refused by name.
  t.file("bad/config.json", R"({"llm_config": {"model_type": "qwen2"}, "vision_config": {}, "select_layer": -4})");
  CHECK_THROWS_WITH(read_hf_config(t.str("bad"), c), Catch::Contains("select_layer -4"));
  t.file("bad2/config.json", R"({"model_type": "internvl", "text_config": {"model_type": "qwen2"},
                                 "vision_feature_select_strategy": "full"})");
  CHECK_THROWS_WITH(read_hf_config(t.str("bad2"), c), Catch::Contains("vision_feature_select_strategy 'full'"));
}

namespace {

// The demo tokenizer without its image tokens, as a plain LLM's tokenizer: dir/plain_tokenizer.json.
std::string plain_tokenizer(const test::DemoDataDir& data) {
  nlohmann::json tj;
  {
    std::ifstream in(data.dir.str("data/tokenizer.json"));
    tj = nlohmann::json::parse(in);
  }
  nlohmann::json kept = nlohmann::json::array();
  for (auto& a : tj["added_tokens"]) {
    const auto c = a["content"].get<std::string>();
    if (c != "<img>" && c != "</img>" && c != "<IMG_CONTEXT>") kept.push_back(a);
  }
  tj["added_tokens"] = kept;
  std::ofstream(data.dir.str("plain_tokenizer.json")) << tj.dump();
  return data.dir.str("plain_tokenizer.json");
}

}  // namespace

TEST_CASE("start points: a bare Qwen2 + InternViT: text logits, ViT, image tokens added with mean rows") {
  test::DemoDataDir data(4);
  auto plain = data::load_tokenizer(plain_tokenizer(data));
  const int64_t old_size = plain->vocab_size();
  REQUIRE_FALSE(plain->token_to_id("<IMG_CONTEXT>"));

  TempDir t;
  auto ref = start_reference(t, "bare --vocab " + std::to_string(old_size));
  ModelConfig cfg;
  cfg.phantom = "off";  // the plain network for the logits check (the recipe test runs with the Phantom dimension)
  cfg.vision_path = t.str("vit");
  LoadReport rep;
  auto model = load_phantom(t.str("llm"), cfg, &rep);
  CHECK(model->cfg.llm.tie_word_embeddings);  // Qwen2-0.5B style: tied, and said so in config.json
  {
    torch::NoGradGuard ng;
    model->eval();
    DecoderInputs in;
    in.embeds = model->language_model->embed(ref["ids"]);
    CHECK((model->language_model->forward(in) - ref["logits"]).abs().max().item<double>() < 1e-4);
    CHECK((model->vision_model(ref["pixels"]) - ref["vit_out"]).abs().max().item<double>() < 1e-4);
  }
  bool proj_created = false, vit_created = false;
  for (auto& n : rep.created) proj_created |= n.rfind("vision_proj.", 0) == 0, vit_created |= n.rfind("vision_model.", 0) == 0;
  CHECK(proj_created);
  CHECK_FALSE(vit_created);

  // Tokens added after the tokenizer's last id; the matrices grow; new rows = mean of the old rows.
  auto patch = recipe::add_special_tokens(data.dir.str("plain_tokenizer.json"), {"<img>", "</img>", "<IMG_CONTEXT>"},
                                         t.str("tok"));
  REQUIRE(patch.added.size() == 3);
  CHECK(patch.added[2].second == old_size + 2);
  auto patched = data::load_tokenizer(patch.path);
  CHECK(patched->token_to_id("<IMG_CONTEXT>") == std::optional<int32_t>(static_cast<int32_t>(old_size + 2)));
  CHECK(patched->encode("a<img>b") == std::vector<int32_t>{plain->encode("a")[0], static_cast<int32_t>(old_size),
                                                             plain->encode("b")[0]});
  auto before = model->language_model->embed_tokens->weight.detach().clone();
  auto line = recipe::init_token_rows(*model, {static_cast<int32_t>(old_size), static_cast<int32_t>(old_size + 1),
                                              static_cast<int32_t>(old_size + 2)}, old_size, old_size + 3);
  auto after = model->language_model->embed_tokens->weight.detach();
  REQUIRE(after.size(0) == old_size + 3);
  CHECK(model->cfg.llm.vocab_size == old_size + 3);
  CHECK(after.narrow(0, 0, old_size).equal(before));
  CHECK((after[old_size + 1] - before.mean(0)).abs().max().item<double>() < 1e-6);
  CHECK(line.find("grown from " + std::to_string(old_size)) != std::string::npos);
  // A second call adds nothing.
  CHECK(recipe::add_special_tokens(patch.path, {"<img>", "</img>", "<IMG_CONTEXT>"}, t.str("tok2")).added.empty());
}

TEST_CASE("start points: a bare Qwen2 + InternViT trains one step through the recipe, tokenizer patched and exported") {
  test::DemoDataDir data(16);
  const std::string d = data.dir.str("data");
  const int64_t old_size = data::load_tokenizer(plain_tokenizer(data))->vocab_size();
  TempDir t;
  start_reference(t, "bare --vocab " + std::to_string(old_size));
  // The model exported with the grown vocabulary and a tokenizer that has the image tokens.
  const std::string yaml = data.dir.file("bare.yaml", "base: " + test::source_path("configs/demo.yaml") +
                                                          "\nstages:\n  - name: step1\n    loss: po\n    trainable: [\".*\"]\n"
                                                          "    max_steps: 1\n");
  auto rc = recipe::load_run_config(
      yaml, {"run.name=bare", "run.output_dir=" + data.dir.str("runs"), "run.threads=2", "data.train=" + d + "/train.jsonl",
             "data.val=", "data.image_root=" + d, "data.tokenizer=" + data.dir.str("plain_tokenizer.json"),
             "data.batch_size=2", "model.path=" + t.str("llm"), "model.vision_path=" + t.str("vit"),
             "validation.benchmark=", "log.tensorboard=false"});
  auto result = test::run(rc);
  REQUIRE(result.losses.size() == 1);
  CHECK(std::isfinite(result.losses[0]));
  ModelConfig again;
  auto exported = load_phantom(data.dir.str("runs/bare/step1"), again);
  CHECK(exported->cfg.llm.vocab_size == old_size + 3);
  auto tok = data::load_tokenizer(data.dir.str("runs/bare/step1/tokenizer.json"));
  CHECK(tok->token_to_id("<IMG_CONTEXT>") == std::optional<int32_t>(static_cast<int32_t>(old_size + 2)));
}

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

// docs/start-points.md's InternVL2 command: the checkpoint directory is both model.path and data.tokenizer. Each
// stage's export must be the trained model (the tokenizer's directory holds weights and a config.json too: copying
// it whole over the export would silently ship the input) and must load with its own tokenizer.
TEST_CASE("start points: an InternVL2 directory as model.path and data.tokenizer exports the trained model") {
  test::DemoDataDir data(16);
  const std::string d = data.dir.str("data");
  const int64_t vocab = data::load_tokenizer(d + "/tokenizer.json")->vocab_size();
  TempDir t;
  start_reference(t, "internvl --family qwen2 --vocab " + std::to_string(vocab));
  const std::string start = t.str("remote");  // the InternVL2 layout: mlp1.*, no Phantom tensor
  std::filesystem::copy_file(d + "/tokenizer.json", start + "/tokenizer.json");
  t.file("remote/tokenizer_config.json", R"({"model_max_length": 4096})");
  const std::string weights_before = file_bytes(start + "/model.safetensors"), config_before = file_bytes(start + "/config.json");
  const std::string yaml = data.dir.file(
      "ivl.yaml", "base: " + test::source_path("configs/demo.yaml") +
                      "\nstages:\n  - name: step1\n    loss: po\n    trainable: [\"^vision_proj\\\\.\", \"_phantom\"]\n"
                      "    max_steps: 1\n  - name: step2\n    loss: sft\n    trainable: [\".*\"]\n    max_steps: 1\n");
  auto rc = recipe::load_run_config(
      yaml, {"run.name=ivl", "run.output_dir=" + data.dir.str("runs"), "run.threads=2", "data.train=" + d + "/train.jsonl",
             "data.val=", "data.image_root=" + d, "data.tokenizer=" + start, "data.batch_size=2", "model.path=" + start,
             "optim.lr=1e-3", "validation.benchmark=", "log.tensorboard=false"});
  auto result = test::run(rc);
  REQUIRE(result.losses.size() == 2);
  // The input is untouched.
  CHECK(file_bytes(start + "/model.safetensors") == weights_before);
  CHECK(file_bytes(start + "/config.json") == config_before);

  ModelConfig in_cfg;
  LoadReport in_rep;
  const auto input = module_state_dict(*load_phantom(start, in_cfg, &in_rep));
  CHECK_FALSE(in_rep.created.empty());  // the input has no Phantom tensor
  StateDict exported[2];
  for (int k = 0; k < 2; ++k) {
    const std::string dir = data.dir.str("runs/ivl/step" + std::to_string(k + 1));
    INFO(dir);
    CHECK(file_bytes(dir + "/model.safetensors") != weights_before);
    CHECK(file_bytes(dir + "/config.json") != config_before);
    ModelConfig cfg;
    LoadReport rep;
    auto model = load_phantom(dir, cfg, &rep);
    CHECK(rep.created.empty());  // every Phantom tensor is in the export
    CHECK(rep.missing.empty());
    exported[k] = module_state_dict(*model);
    // Its own tokenizer: the one the run trained with (generate and eval load it from the directory).
    auto tok = data::load_tokenizer(dir);
    CHECK(tok->vocab_size() == vocab);
    CHECK(tok->token_to_id("<IMG_CONTEXT>").has_value());
    CHECK(std::filesystem::exists(dir + "/tokenizer_config.json"));
  }
  auto differs = [](const at::Tensor& a, const at::Tensor& b) { return !torch::equal(a, b); };
  int phantom_tensors = 0;
  for (const auto& [name, w] : exported[0]) {
    INFO(name);
    const bool is_phantom = name.find("_phantom") != std::string::npos;
    phantom_tensors += is_phantom;
    if (is_phantom) CHECK(differs(w, exported[1].at(name)));          // trained again in step 2
    else if (name.rfind("vision_proj.", 0) == 0) CHECK(differs(w, input.at(name)));  // trained in step 1
    else CHECK_FALSE(differs(w, input.at(name)));                      // frozen in step 1
  }
  CHECK(phantom_tensors == 2 * (12 + 4));  // 2 layers x (3 XAttn x 4 Linears + 2 gates x weight, bias)
  CHECK(differs(exported[1].at("language_model.model.embed_tokens.weight"), input.at("language_model.model.embed_tokens.weight")));
}

TEST_CASE("image placement: one rule for conversations, triples and inference prompts, saved with the model") {
  test::DemoDataDir data(4);
  auto tok = data::load_tokenizer(data.dir.str("data/tokenizer.json"));
  data::SampleEncoder enc(*tok, data::ChatTemplate::by_name("chatml"), data::ImageTokens::from_tokenizer(*tok, 4));
  CHECK(enc.image_placement() == "prepend");  // the official prompt
  CHECK_THROWS_WITH(enc.set_image_placement("middle"), Catch::Contains("image placement 'middle' is unknown"));
  for (const char* rule : {"prepend", "prepend_newline"}) {
    INFO(rule);
    enc.set_image_placement(rule);
    // The eval / generate prompt of a bare question...
    const auto eval_prompt = enc.prompt("What is it?", {1});
    // ...is the prompt of a LLaVA conversation ("<image>\n" + question) and of a triple, whatever they wrote.
    for (const char* written : {"<image>\nWhat is it?", "<image>What is it?", "What is it?"}) {
      INFO(written);
      data::Sample conv;
      conv.turns = {{true, written}, {false, "A shirt."}};
      auto c = enc.conversation(conv, {1});
      std::vector<int32_t> prompt;
      for (size_t i = 0; i < c.ids.size() && c.labels[i] == data::kIgnore; ++i) prompt.push_back(c.ids[i]);
      CHECK(prompt == eval_prompt);
      data::Sample tri;
      tri.question = written, tri.chosen = "A", tri.rejected = {"B"};
      CHECK(enc.preference(tri, {1}).prompt == eval_prompt);
    }
    const std::string text = tok->decode(eval_prompt);
    const std::string after_image = text.substr(text.find("</img>") + 6);
    CHECK(after_image.rfind(std::string(rule) == "prepend" ? "What" : "\nWhat", 0) == 0);
  }
  // Two images under multi_image first_turn: both first, in order (interleaved: tests/test_multi_image.cpp).
  enc.set_image_placement("prepend");
  enc.set_multi_image("first_turn");
  auto two = tok->decode(enc.prompt("Compare <image> and\n<image>\nplease.", {1, 1}));
  CHECK(two.find("</img><img>") != std::string::npos);
  CHECK(two.find("</img>Compare  and\nplease.") != std::string::npos);

  // The rule of training is written into config.json; checkpoints without it (official ones) use the official one.
  TempDir t;
  auto cfg = test::tiny_vlm_config();
  cfg.prompt.image_placement = "prepend_newline";
  PhantomModel m(cfg);
  save_phantom(*m, t.str("saved"));
  ModelConfig back;
  read_hf_config(t.str("saved"), back);
  CHECK(back.prompt.image_placement == "prepend_newline");
  t.file("official/config.json", R"({"llm_config": {"model_type": "qwen2"}, "vision_config": {}, "ps_version": "v2"})");
  ModelConfig official;
  read_hf_config(t.str("official"), official);
  CHECK(official.prompt.image_placement == "prepend");
  CHECK(official.prompt.max_tiles == 6);
  CHECK(official.prompt.source == "defaults");
}

TEST_CASE("recipe: a warm-up on LLaVA conversations, then PO on triples, in one run, and a mismatch names stage, file, format") {
  test::DemoDataDir data(8);
  const std::string d = data.dir.str("data");
  // The demo triples rewritten as LLaVA conversations ("<image>\n" + question, the chosen answer).
  {
    std::ifstream in(d + "/train.jsonl");
    std::ofstream out(d + "/llava.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      nlohmann::json c = {{"id", j["id"]}, {"image", j["image"]},
                          {"conversations", {{{"from", "human"}, {"value", "<image>\n" + j["question"].get<std::string>()}},
                                             {{"from", "gpt"}, {"value", j["chosen"]}}}}};
      out << c.dump() << "\n";
    }
  }
  const std::string yaml = data.dir.file("mixed.yaml", "base: " + test::source_path("configs/demo.yaml") +
                                                           "\nstages:\n"
                                                           "  - name: warmup\n    loss: sft\n    trainable: [\".*\"]\n"
                                                           "    data: " + d + "/llava.jsonl\n    format: conversations\n    max_steps: 1\n"
                                                           "  - name: step1\n    loss: po\n    trainable: [\".*\"]\n"
                                                           "    format: preference\n    max_steps: 1\n");
  std::vector<std::string> o = {"run.name=mixed", "run.output_dir=" + data.dir.str("runs"), "run.threads=2",
                                "data.train=" + d + "/train.jsonl", "data.val=", "data.image_root=" + d,
                                "data.tokenizer=" + d + "/tokenizer.json", "data.batch_size=2", "model.llm.num_layers=1",
                                "model.vision.num_layers=1", "validation.benchmark=", "log.tensorboard=false"};
  auto result = test::run(recipe::load_run_config(yaml, o));
  CHECK(result.losses.size() == 2);
  // The same recipe without the per-stage formats: data.format (conversations) cannot feed a PO stage.
  auto bad = o;
  bad.push_back("data.format=conversations");
  bad.push_back("stages.1.format=");
  bad.push_back("run.name=mixed-bad");
  CHECK_THROWS_WITH(test::run(recipe::load_run_config(yaml, bad)),
                    Catch::Contains("stage step1 (stages.1.format unset, data.format = conversations): loss po needs "
                                    "preference triples but " + d + "/train.jsonl is read as 'conversations'"));
  // A triples file read as conversations names the stage and the format before the row's own error.
  auto wrong = o;
  wrong.push_back("stages.0.format=preference");
  wrong.push_back("run.name=mixed-wrong");
  CHECK_THROWS_WITH(test::run(recipe::load_run_config(yaml, wrong)),
                    Catch::Contains("stage warmup (stages.0.format = preference): " + d + "/llava.jsonl read as format 'preference'"));
}
