// Where a sample's images go (data.multi_image): interleaved keeps each <image> where the text writes it (in any
// user turn), first_turn puts every image at the start of the first user turn. The expected prompts are written
// out by hand below as chat-template text and tokenised, so the rule is pinned by its definition, not by a
// snapshot of the encoder's output. The rule is saved with an exported model; old exports keep first_turn.
#include "data/chat_template.h"
#include "data/tokenizers/tokenizer.h"
#include "phantom/io/checkpoint.h"
#include "phantom/io/hf_config.h"
#include "tests/helpers.h"
#include "tests/tiny.h"

using namespace phantom;
using test::TempDir;

namespace {

// <img> + 4 context tokens per tile + </img>, as the tokenizer's own pieces.
std::string image_run(int64_t tiles) {
  std::string s = "<img>";
  for (int64_t k = 0; k < 4 * tiles; ++k) s += "<IMG_CONTEXT>";
  return s + "</img>";
}
std::string user(const std::string& text) { return "<|im_start|>user\n" + text + "<|im_end|><|im_start|>assistant\n"; }

// The ids before the first supervised label.
std::vector<int32_t> prompt_of(const data::EncodedConversation& c) {
  std::vector<int32_t> p;
  for (size_t i = 0; i < c.ids.size() && c.labels[i] == data::kIgnore; ++i) p.push_back(c.ids[i]);
  return p;
}

}  // namespace

TEST_CASE("multi_image interleaved: <image> stays where written, the same in conversations, triples and inference prompts") {
  test::DemoDataDir data(2);
  auto tok = data::load_tokenizer(data.dir.str("data/tokenizer.json"));
  for (const char* mode : {"in_context", "per_segment"}) {
    INFO(mode);
    data::SampleEncoder enc(*tok, data::ChatTemplate::by_name("chatml"), data::ImageTokens::from_tokenizer(*tok, 4));
    enc.set_answer_tokenization(mode);
    CHECK(enc.multi_image() == "interleaved");  // the default of a new encoder, as of data.multi_image
    CHECK_THROWS_WITH(enc.set_multi_image("middle"), Catch::Contains("multi_image rule 'middle' is unknown"));

    const std::string q = "Compare <image> with <image>: which is darker?";
    const std::vector<int64_t> tiles{1, 2};
    const auto expected = tok->encode(user("Compare " + image_run(1) + " with " + image_run(2) + ": which is darker?"));
    const auto eval_prompt = enc.prompt(q, tiles);  // `generate` and `eval` build their prompts with this
    CHECK(eval_prompt == expected);
    data::Sample conv;
    conv.turns = {{true, q}, {false, "The first."}};
    CHECK(prompt_of(enc.conversation(conv, tiles)) == expected);
    data::Sample tri;
    tri.question = q, tri.chosen = "The first.", tri.rejected = {"The second."};
    CHECK(enc.preference(tri, tiles).prompt == expected);

    // Placeholders a turn starts with are written by image_placement, as under first_turn: a single image at the
    // front (every benchmark prompt, every LLaVA row) gets the official Phantom prompt under both rules.
    const auto front = tok->encode(user(image_run(1) + image_run(1) + "Two of them."));
    CHECK(enc.prompt("<image>\n<image>\nTwo of them.", {1, 1}) == front);
    CHECK(enc.prompt("Two of them.", {1, 1}) == front);  // no placeholder: every image first
    enc.set_image_placement("prepend_newline");
    CHECK(enc.prompt("<image>Two of <image> them.", {1, 1}) ==
          tok->encode(user(image_run(1) + "\nTwo of " + image_run(1) + " them.")));
    enc.set_image_placement("prepend");

    // A placeholder of a later user turn stays in that turn.
    data::Sample two_turns;
    two_turns.turns = {{true, "<image>\nWhat is it?"}, {false, "A shirt."}, {true, "And this one, <image>?"}, {false, "A shoe."}};
    const auto c = enc.conversation(two_turns, {1, 1});
    const std::string text = tok->decode(c.ids);
    CHECK(text == user(image_run(1) + "What is it?") + "A shirt.<|im_end|>" + user("And this one, " + image_run(1) + "?") +
                      "A shoe.<|im_end|>");

    // first_turn: the placeholders go and every image starts the first turn (the rule of exports before this one).
    enc.set_multi_image("first_turn");
    CHECK(enc.prompt(q, tiles) == tok->encode(user(image_run(1) + image_run(2) + "Compare  with : which is darker?")));
    CHECK(enc.prompt("<image>\n<image>\nTwo of them.", {1, 1}) == front);
    CHECK(tok->decode(enc.conversation(two_turns, {1, 1}).ids) ==
          user(image_run(1) + image_run(1) + "What is it?") + "A shirt.<|im_end|>" + user("And this one, ?") + "A shoe.<|im_end|>");
  }
}

TEST_CASE("multi_image: the rule is saved with the model, exports from before it keep first_turn, official ones get interleaved") {
  TempDir t;
  auto cfg = test::tiny_vlm_config();
  CHECK(cfg.prompt.multi_image == "interleaved");
  for (const char* rule : {"interleaved", "first_turn"}) {
    cfg.prompt.multi_image = rule;
    PhantomModel m(cfg);
    save_phantom(*m, t.str(rule));
    ModelConfig back;
    read_hf_config(t.str(rule), back);
    CHECK(back.prompt.multi_image == rule);
  }
  const std::string arch = R"("llm_config": {"model_type": "qwen2"}, "vision_config": {}, "ps_version": "v2")";
  t.file("official/config.json", "{" + arch + "}");
  t.file("old_export/config.json", "{" + arch + R"(, "phantom_prompt": {"chat_template": "chatml", "max_tiles": 1,
         "use_thumbnail": true, "image_placement": "prepend"}})");
  t.file("older_export/config.json", "{" + arch + R"(, "image_placement": "prepend_newline"})");
  for (auto [dir, rule] : {std::pair<const char*, const char*>{"official", "interleaved"}, {"old_export", "first_turn"},
                           {"older_export", "first_turn"}}) {
    INFO(dir);
    ModelConfig c;
    read_hf_config(t.str(dir), c);
    CHECK(c.prompt.multi_image == rule);
  }
}
