// What the triple builder asks an OpenAI-compatible endpoint, in one place so that it can be read and changed.
//
// The rejected-answer prompt (the paper had GPT-4o-mini write "incorrect and ambiguous" answers): the endpoint
// sees the question (its <image> placeholders replaced by "[image]", since no image is sent) and the correct
// answer, and writes one answer that is plausible but incorrect, or ambiguous where the correct one is precise,
// in the correct answer's style, format and length. The k answers of one question differ by the request's seed
// (and the sampling temperature, 1.0 by default).
//
// The judge prompt: asked about an answer the rules (verify.h) call wrong, the endpoint says yes when it means
// the same as the reference; such answers are dropped as "judged correct (endpoint)".
#pragma once

#include <string>

#include "trainers/triples/endpoint.h"

namespace phantom::triples {

extern const char* const kRejectedSystemPrompt;
extern const char* const kJudgeSystemPrompt;

ChatRequest rejected_answer_request(const std::string& question, const std::string& chosen, int64_t sample_index,
                                    double temperature, int64_t max_tokens);
ChatRequest judge_request(const std::string& question, const std::string& reference, const std::string& candidate);

// The endpoint's wrong answer as written, less what models add around it: surrounding spaces and quotes, and a
// leading "Wrong answer:" label echoed from the prompt.
std::string clean_reply(const std::string& reply);
// The judge's reply read as a verdict: true when its first word is "yes" (case and punctuation ignored).
bool judge_says_correct(const std::string& reply);

}  // namespace phantom::triples
