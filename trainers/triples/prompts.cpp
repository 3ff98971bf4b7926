#include "trainers/triples/prompts.h"

#include "trainers/triples/verify.h"

namespace phantom::triples {

const char* const kRejectedSystemPrompt =
    "You write wrong answers for a vision-language training set. Each question is about an image that you cannot "
    "see; you are given the question and its correct answer. Write one answer that a careless reader could take "
    "for the right one but that is incorrect, or ambiguous where the correct answer is precise. Keep the style, "
    "format and length of the correct answer: an option letter stays one option letter (a different one), a number "
    "stays a number, one sentence stays one sentence. Reply with the answer only, without any explanation.";

const char* const kJudgeSystemPrompt =
    "You grade answers to questions about images. Reply with one word: yes if the candidate answer means the same "
    "as the reference answer, no otherwise.";

namespace {
std::string without_placeholders(std::string q) {
  for (size_t p; (p = q.find("<image>")) != std::string::npos;) q.replace(p, 7, "[image]");
  return q;
}
}  // namespace

ChatRequest rejected_answer_request(const std::string& question, const std::string& chosen, int64_t sample_index,
                                    double temperature, int64_t max_tokens) {
  ChatRequest r;
  r.messages = {{"system", kRejectedSystemPrompt},
                {"user", "Question:\n" + without_placeholders(question) + "\n\nCorrect answer:\n" + chosen +
                             "\n\nWrong answer:"}};
  r.temperature = temperature;
  r.max_tokens = max_tokens;
  r.seed = sample_index;
  return r;
}

ChatRequest judge_request(const std::string& question, const std::string& reference, const std::string& candidate) {
  ChatRequest r;
  r.messages = {{"system", kJudgeSystemPrompt},
                {"user", "Question:\n" + without_placeholders(question) + "\n\nReference answer:\n" + reference +
                             "\n\nCandidate answer:\n" + candidate +
                             "\n\nDoes the candidate mean the same as the reference (yes/no)?"}};
  r.temperature = 0.0;
  r.max_tokens = 4;
  r.seed = 0;
  return r;
}

std::string clean_reply(const std::string& reply) {
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return std::string();
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
  };
  std::string s = trim(reply);
  for (const char* label : {"Wrong answer:", "wrong answer:", "Answer:"})
    if (s.rfind(label, 0) == 0) s = trim(s.substr(std::string(label).size()));
  if (s.size() >= 2 && ((s.front() == '"' && s.back() == '"') || (s.front() == '\'' && s.back() == '\'')))
    s = trim(s.substr(1, s.size() - 2));
  return s;
}

bool judge_says_correct(const std::string& reply) {
  const std::string n = normalize_answer(reply);
  return n.substr(0, n.find(' ')) == "yes";
}

}  // namespace phantom::triples
