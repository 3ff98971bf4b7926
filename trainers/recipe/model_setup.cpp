#include "trainers/recipe/model_setup.h"

#include <filesystem>

#include "phantom/io/checkpoint.h"
#include "phantom/util/config.h"
#include "phantom/util/logf.h"
#include "trainers/recipe/start_point.h"

namespace phantom::recipe {
namespace fs = std::filesystem;

std::string describe(const PromptConfig& p) {
  return p.chat_template + " template, max_tiles " + std::to_string(p.max_tiles) +
         (p.use_thumbnail ? ", thumbnail" : ", no thumbnail") + ", image placement " + p.image_placement +
         ", images " + p.multi_image + " (from " + p.source + ")";
}

namespace {

// The saved prompt with the overrides applied, each one logged; bad values name the flag's field.
PromptConfig apply_overrides(PromptConfig p, const std::map<std::string, std::string>& overrides) {
  for (auto& [key, value] : overrides) {
    std::string before;
    if (key == "chat_template") before = p.chat_template, p.chat_template = value;
    else if (key == "image_placement") before = p.image_placement, p.image_placement = value;
    else if (key == "multi_image") before = p.multi_image, p.multi_image = value;
    else if (key == "max_tiles") {
      before = std::to_string(p.max_tiles);
      try {
        p.max_tiles = std::stoll(value);
      } catch (const std::exception&) {
        p.max_tiles = 0;
      }
      if (p.max_tiles < 1 || p.max_tiles > 64) throw std::runtime_error("max_tiles '" + value + "' must be in 1..64");
    } else if (key == "use_thumbnail") {
      if (value != "true" && value != "false") throw std::runtime_error("use_thumbnail '" + value + "' must be true or false");
      before = p.use_thumbnail ? "true" : "false", p.use_thumbnail = value == "true";
    } else {
      throw std::logic_error("unknown prompt override " + key);
    }
    if (before != value) log::warn("prompt: {} {} overrides the model's {} ({})", key, value, before, p.source);
  }
  return p;
}

void check_prompt(const PromptConfig& p) {
  auto bad = [&](const std::string& what) { return std::runtime_error(p.source + ": prompt " + what); };
  if (!data::SampleEncoder::valid_image_placement(p.image_placement))
    throw bad("image_placement '" + p.image_placement + "' is unknown (expected prepend or prepend_newline)");
  if (!data::SampleEncoder::valid_multi_image(p.multi_image))
    throw bad("multi_image '" + p.multi_image + "' is unknown (expected interleaved or first_turn)");
  if (p.chat_template != "auto") data::ChatTemplate::by_name(p.chat_template);  // throws naming the template
}

// The image tokens for a tokenizer that lacks them (a bare LLM start), in a copy under `dir`; their rows start as
// the mean of the existing ones (docs/start-points.md).
void add_image_tokens(LoadedModel& m, const std::string& dir) {
  auto& model = *m.model;
  auto patch = add_special_tokens(m.tokenizer_path, {"<img>", "</img>", model.cfg.image_token}, (fs::path(dir) / "tokenizer").string());
  if (patch.added.empty()) return;
  std::vector<int32_t> ids;
  std::string names;
  for (auto& [t, id] : patch.added) ids.push_back(id), names += (names.empty() ? "" : ", ") + t + " = " + std::to_string(id);
  m.tok = data::load_tokenizer(patch.path);
  m.tokenizer_path = patch.path;
  log::info("tokenizer: added {} (now {}); {}", names, patch.path, init_token_rows(model, ids, patch.old_size, m.tok->vocab_size()));
}

}  // namespace

LoadedModel build_model(const ModelSpec& spec) {
  LoadedModel m;
  const bool training = !spec.added_tokens_dir.empty();
  ModelConfig mc = spec.model;
  m.tokenizer_path = spec.tokenizer.empty() ? mc.path : spec.tokenizer;
  m.tok = data::load_tokenizer(m.tokenizer_path);
  m.model = mc.path.empty() ? PhantomModel(mc) : load_phantom(mc.path, mc);
  if (mc.path.empty()) init_weights(*m.model);
  auto& model = *m.model;
  if (training) add_image_tokens(m, spec.added_tokens_dir);
  for (const auto& p : model.named_parameters())  // NaN/Inf weights would only ever produce skipped steps
    if (!torch::isfinite(p.value()).all().item<bool>())
      throw std::runtime_error("model: parameter " + p.key() + " holds NaN or Inf values" +
                               (mc.path.empty() ? std::string() : " (loaded from " + mc.path + ")"));
  if (m.tok->vocab_size() > model.cfg.llm.vocab_size)
    throw config::ConfigError("config error: model.llm.vocab_size (" + std::to_string(model.cfg.llm.vocab_size) +
                              ") is smaller than the tokenizer's " + std::to_string(m.tok->vocab_size()) + " tokens");
  if (training || model.image_token_index < 0) {
    auto id = m.tok->token_to_id(model.cfg.image_token);
    if (!id) throw std::runtime_error("the tokenizer has no image token '" + model.cfg.image_token + "'");
    model.image_token_index = *id;
  }
  model.to(spec.device);

  // The prompt: the given one (training) or the saved one, overridden; the template resolved by family and kept
  // in the model's config, so that the export writes what was used.
  PromptConfig prompt = spec.prompt ? *spec.prompt : apply_overrides(model.cfg.prompt, spec.prompt_overrides);
  check_prompt(prompt);
  const auto tmpl = data::ChatTemplate::resolve(prompt.chat_template, model.cfg.llm.family);
  prompt.chat_template = tmpl.name;
  model.cfg.prompt = prompt;
  m.enc = std::make_unique<data::SampleEncoder>(*m.tok, tmpl, data::ImageTokens::from_tokenizer(*m.tok, model.tokens_per_tile()));
  m.enc->set_image_placement(prompt.image_placement);
  m.enc->set_multi_image(prompt.multi_image);
  m.enc->set_answer_tokenization(spec.answer_tokenization);
  m.tiles.tile = static_cast<int>(model.cfg.vision.image_size);
  m.tiles.max_num = static_cast<int>(prompt.max_tiles);
  m.tiles.use_thumbnail = prompt.use_thumbnail;
  // Generation stops where this template ends a turn, unless the checkpoint named its own eos.
  if (model.cfg.llm.eos_token_ids.empty())
    if (auto e = m.tok->token_to_id(tmpl.assistant_end)) {
      model.cfg.llm.eos_token_ids = {static_cast<int64_t>(*e)};
      model.language_model->cfg.eos_token_ids = model.cfg.llm.eos_token_ids;
    }
  m.pad_id = tmpl.pad_id(*m.tok);
  log::info("prompt: {}", describe(prompt));
  return m;
}

}  // namespace phantom::recipe
