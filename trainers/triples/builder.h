// The triple builder: the samples of an SFT file (any format the trainer reads) in, preference triples out
// (question, chosen, rejected answers), the rejected answers written by an OpenAI-compatible endpoint, sampled from
// a phantom model and verified wrong against the reference, or both. Every candidate passes the same filters:
// empty, equal to the chosen answer after normalisation, judged correct (by verify.h's rules, and by the endpoint
// where asked), a duplicate of one already kept. The output is JSONL, appended a chunk of questions at a time,
// each row carrying its input row ("source"): a rerun skips the rows already written, and with the endpoint's
// cache a killed run resumes where it stopped.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/annotations.h"
#include "trainers/triples/endpoint.h"

namespace phantom::triples {

// One question of the input: the sample, the question asked and its reference (chosen) answer.
struct TripleQuestion {
  const data::Sample* sample = nullptr;
  std::string question, chosen;
};

// The model source: `k` sampled answers for every question, in order.
using ModelSampler = std::function<std::vector<std::vector<std::string>>(const std::vector<TripleQuestion>&, int64_t k)>;

struct BuildOptions {
  std::string out_path;           // JSONL, appended
  data::DataConfig data;          // output field names; image paths are written relative to data.image_root
  int64_t endpoint_k = 0;         // endpoint answers per question (0: the endpoint writes none)
  double endpoint_temperature = 1.0;
  int64_t endpoint_max_tokens = 256;
  bool endpoint_judge = false;    // ask the endpoint about every candidate the rules call wrong
  int64_t model_k = 0;            // model samples per question (0: no model source)
  int64_t chunk = 64;             // questions per written chunk
  int64_t limit = 0;              // the first N questions only (0: all)
};

struct BuildReport {
  int64_t rows_in = 0;            // samples read from the input
  int64_t unreadable = 0;         // input rows the reader dropped (their reasons printed by the caller)
  int64_t already_done = 0;       // rows found in the output from an earlier run
  std::map<std::string, int64_t> rows_dropped;  // input rows that gave no triple, by reason
  int64_t questions = 0;          // rows processed in this run
  int64_t triples_out = 0;        // rows written in this run
  int64_t rejected_out = 0;       // rejected answers in them
  std::map<std::string, int64_t> candidates;    // candidate answers by source
  std::map<std::string, int64_t> drops;         // candidate answers dropped, by reason
  int64_t model_samples = 0, model_right = 0;   // model source: samples, of which verified correct
  int64_t always_right = 0, always_wrong = 0, mixed = 0;  // model source: questions by their k samples
  int64_t framing_references = 0;  // text answers of the input the framing words were counted over
  std::vector<std::string> framing; // words the text rule does not compare (verify.h: framing_words)
  std::string text() const;       // the report printed at the end
};

// The (question, chosen) of a sample, or the reason it cannot give one ("multi-turn conversation", ...).
std::string question_of(const data::Sample& s, TripleQuestion& q);

BuildReport build_triples(const std::vector<data::Sample>& samples, const BuildOptions& opts, ChatEndpoint* endpoint,
                          const ModelSampler& sampler);

}  // namespace phantom::triples
