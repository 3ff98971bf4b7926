// Benchmark names and the prompts Phantom is evaluated with (docs/paper.md, "Evaluation protocol", Phantom's utils.make_instruction).
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
    {Bench::MMVet2, "mm-vet-v2"},      {Bench::MMVet2, "mmvet-v2"},      {Bench::VisualWebBench, "visualwebbench"},
    {Bench::VisualWebBench, "vwb"},    {Bench::BLINK, "blink"},
};

// "A. text\nB. text" (docs/paper.md, "Evaluation protocol": options as "A. text" lines joined by "\n").
std::string options_block(const std::vector<std::string>& options) {
  std::string s;
  for (size_t i = 0; i < options.size(); ++i) {
    if (i) s += "\n";
    s += std::string(1, char('A' + i)) + ". " + options[i];
  }
  return s;
}
// VisualWebBench's published prompt of each task (its authors' prompts.py, as Phantom uses them). bbox and options
// are formatted as Python prints a list, which is what str.format does with them.
std::string visualwebbench_prompt(const BenchItem& it) {
  auto extra = [&](const char* k) {
    auto f = it.extra.find(k);
    return f == it.extra.end() ? std::string() : f->second;
  };
  const std::string task = it.category, bbox = extra("bbox_text");
  const std::string box_intro = "You are given a screenshot of a webpage with a red rectangle bounding box. The [x1, y1, "
                                "x2, y2] coordinates of the bounding box is " + bbox + ".\n";
  const std::string one_letter = "\n\nYou should directly tell me your choice in a single uppercase letter, and do not "
                                 "output any explanation or any other contents.\n";
  if (task == "web_caption")
    return "You are given a screenshot of a webpage. Please generate the meta web description information of this "
           "webpage, i.e., content attribute in <meta name=\"description\" content=\"\"> HTML element.\n\nYou should "
           "use the following format, and do not output any explanation or any other contents:\n<meta "
           "name=\"description\" content=\"YOUR ANSWER\">\n";
  if (task == "heading_ocr")
    return "You are given a screenshot of a webpage. Please generate the main text within the screenshot, which can be "
           "regarded as the heading of the webpage.\n\nYou should directly tell me the main content, and do not output "
           "any explanation or any other contents.\n";
  if (task == "webqa")
    return it.question + "\nYou should directly tell me your answer in the fewest words possible, and do not output any "
                         "explanation or any other contents.\n";
  if (task == "element_ocr")
    return box_intro + "Please perform OCR in the bounding box and recognize the text content within the red bounding "
                       "box.\n\nYou should use the following format:\nThe text content within the red bounding box is: "
                       "<YOUR ANSWER>\n";
  if (task == "element_ground")
    return "In this website screenshot, I have labeled IDs for some HTML elements as candicates. Tell me which one best "
           "matches the description: " + it.question + one_letter;
  if (task == "action_prediction")
    return box_intro + "Please select the best webpage description that matches the new webpage after clicking the "
                       "selected element in the bounding box:\n" + py_list_repr(it.options) + one_letter;
  if (task == "action_ground")
    return "In this website screenshot, I have labeled IDs for some HTML elements as candicates. Tell me which one I "
           "should click to complete the following task: " + it.question + one_letter;
  throw std::runtime_error("VisualWebBench: unknown task_type '" + task + "' of item " + it.id);
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
    case Bench::MathVerse:
    case Bench::VisualWebBench: return 512;
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
    case Bench::BLINK:      // the published "prompt" lists the choices as "(A) ..." lines; the reader adds the
                            // disclaimer Phantom puts before three subtasks
      body = it.question;
      break;
    case Bench::VisualWebBench:
      body = visualwebbench_prompt(it);
      break;
  }
  // One <image> for an item with images: several images are laid side by side into one (docs/paper.md, "Model").
  return {(it.images.empty() ? "" : "<image>") + body, max_new_tokens(b)};
}

}  // namespace phantom::eval
