// Benchmark names and the prompts Phantom is evaluated with (SPEC §6, Phantom's utils.make_instruction).
#include <stdexcept>

#include "trainers/eval/benchmarks.h"

namespace phantom::eval {

namespace {
struct NameEntry {
  Bench bench;
  const char* name;
};
// The first entry of each benchmark is its canonical name; the rest are accepted aliases.
const NameEntry kNames[] = {
    {Bench::MMBench, "mmbench"},       {Bench::MMBench, "mmbench_dev"},  {Bench::MMBench, "mmbench_cn"},
    {Bench::MMStar, "mmstar"},         {Bench::ScienceQA, "sqa"},        {Bench::ScienceQA, "scienceqa"},
    {Bench::AI2D, "ai2d"},             {Bench::SEED, "seed"},            {Bench::SEED, "seed-bench"},
    {Bench::POPE, "pope"},             {Bench::MME, "mme"},              {Bench::ChartQA, "chartqa"},
    {Bench::HallusionBench, "hallusionbench"}, {Bench::HallusionBench, "hallb"},
    {Bench::MathVista, "mathvista"},   {Bench::MMVet, "mmvet"},          {Bench::MMVet, "mm-vet"},
    {Bench::LLaVAW, "llavaw"},         {Bench::LLaVAW, "llava-w"},       {Bench::LLaVAW, "llava_wild"},
    {Bench::MathVerse, "mathverse"},   {Bench::SEED2Plus, "seed2plus"},  {Bench::SEED2Plus, "seed-2-plus"},
    {Bench::CVBench, "cvbench"},       {Bench::CVBench, "cv-bench"},     {Bench::MMVet2, "mmvet2"},
    {Bench::MMVet2, "mm-vet-v2"},      {Bench::MMVet2, "mmvet-v2"},
};

// "A. text\nB. text" (SPEC §6: options as "A. text" lines joined by "\n").
std::string options_block(const std::vector<std::string>& options) {
  std::string s;
  for (size_t i = 0; i < options.size(); ++i) {
    if (i) s += "\n";
    s += std::string(1, char('A' + i)) + ". " + options[i];
  }
  return s;
}
}  // namespace

std::string bench_name(Bench b) {
  for (const auto& e : kNames)
    if (e.bench == b) return e.name;
  return "unknown";
}

Bench bench_from_name(const std::string& name) {
  for (const auto& e : kNames)
    if (name == e.name) return e.bench;
  std::string known;
  for (const auto& e : kNames) known += (known.empty() ? "" : ", ") + std::string(e.name);
  throw std::runtime_error("unknown benchmark '" + name + "' (known: " + known + ")");
}

bool bench_is_judged(Bench b) {
  return b == Bench::MathVista || b == Bench::MathVerse || b == Bench::MMVet || b == Bench::MMVet2 || b == Bench::LLaVAW;
}

int64_t max_new_tokens(Bench b) {
  switch (b) {
    case Bench::MathVista:
    case Bench::MathVerse: return 512;
    case Bench::MMVet:
    case Bench::MMVet2:
    case Bench::LLaVAW: return 1024;
    default: return 5;  // multiple-choice and yes/no sets (ChartQA's short answers too, as Phantom)
  }
}

BenchPrompt build_prompt(Bench b, const BenchItem& it) {
  std::string body;
  switch (b) {
    case Bench::MMBench:
    case Bench::ScienceQA:
    case Bench::AI2D:
    case Bench::SEED:
    case Bench::SEED2Plus: {
      // The hint goes first, as Phantom's loader does for MMBench and ScienceQA ("\n".join([hint, question, ...]));
      // an empty hint is left out rather than leaving an empty first line.
      auto h = it.extra.find("hint");
      if (h != it.extra.end() && !h->second.empty()) body = h->second + "\n";
      body += it.question + "\n" + options_block(it.options) + kMultipleChoiceSuffix;
      break;
    }
    case Bench::MMStar:
      // MMStar's questions already list their options ("Options: A: ..., B: ..."); add them only when not.
      body = it.question;
      if (!it.options.empty() && it.question.find("Options:") == std::string::npos)
        body += "\n" + options_block(it.options);
      body += kMultipleChoiceSuffix;
      break;
    case Bench::CVBench:  // CV-Bench's published "prompt" already lists its choices as "(A) ..." lines
      body = it.question + kMultipleChoiceSuffix;
      break;
    case Bench::POPE:
    case Bench::ChartQA:
      body = it.question + kShortAnswerSuffix;
      break;
    case Bench::HallusionBench:
      body = it.question;
      if (body.find("Please answer yes or no.") == std::string::npos) body += kYesNoSuffix;
      break;
    case Bench::MME:        // the published question already ends with "Please answer yes or no."
    case Bench::MathVista:  // the published "query" carries MathVista's own hint and choices
    case Bench::MMVet:
    case Bench::LLaVAW:
    case Bench::MathVerse:  // the published "query_wo" (question, choices and MathVerse's instruction)
    case Bench::MMVet2:     // the question with its <IMG> markers removed
      body = it.question;
      break;
  }
  // One <image> for an item with images: several images are laid side by side into one (SPEC §1.4.6).
  return {(it.images.empty() ? "" : "<image>") + body, max_new_tokens(b)};
}

}  // namespace phantom::eval
