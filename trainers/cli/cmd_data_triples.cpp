// phantom data triples --input SFT_FILE --out TRIPLES.jsonl [--endpoint URL --api-model M --k-endpoint K]
//                      [--model DIR --k-model K] [options]
// Preference triples from an SFT file: rejected answers written by an OpenAI-compatible endpoint and/or sampled
// from a phantom model and verified wrong (trainers/triples/builder.h has the pipeline and its filters).
#include <cstdio>
#include <cstdlib>

#include "data/annotations.h"
#include "data/format_guess.h"
#include "phantom/model/runtime.h"
#include "trainers/cli/commands.h"
#include "trainers/cli/flags.h"
#include "trainers/recipe/run_config.h"
#include "trainers/triples/builder.h"
#include "trainers/triples/model_source.h"
#include "phantom/util/stop.h"

namespace phantom::cli {

static const char* kTriplesHelp =
    "usage: phantom data triples --out TRIPLES.jsonl (--input FILE [--format F] [--image-root DIR] | --config RUN.yaml)\n"
    "                            [endpoint source] [model source] [--judge] [--limit N] [--chunk N] [key=value ...]\n\n"
    "  Writes preference triples (question, chosen, rejected) from an SFT file in any format the trainer reads\n"
    "  (conversations with one question and answer, preference rows whose rejected answers are replaced, an\n"
    "  InternVL meta file). Rows are appended a chunk at a time with their input row in \"source\"; a rerun skips\n"
    "  the rows already written. docs/custom-data.md walks through it.\n\n"
    "  --input FILE          the SFT file (default: data.train of --config)\n"
    "  --format F            conversations | preference | internvl_meta (default: data.format of --config, else\n"
    "                        conversations)\n"
    "  --image-root DIR      image paths are relative to this (default: data.image_root of --config)\n"
    "  --config RUN.yaml     take data.* (file, format, image root, field names) from a run config\n"
    "endpoint source (an OpenAI-compatible chat-completions server; the prompt is in trainers/triples/prompts.cpp):\n"
    "  --endpoint URL        base URL, e.g. https://api.openai.com/v1\n"
    "  --api-model NAME      the model asked, e.g. gpt-4o-mini\n"
    "  --api-key-env VAR     environment variable holding the key (default OPENAI_API_KEY; unset: no key sent)\n"
    "  --k-endpoint K        written wrong answers per question (default 1 with --endpoint, else 0)\n"
    "  --concurrency N       requests in flight (default 4)   --retries N   on 429/5xx/no connection (default 6)\n"
    "  --backoff S           first retry delay, doubling (default 1; a Retry-After header wins)\n"
    "  --timeout S           one request (default 120)        --cache FILE  (default OUT.cache.jsonl)\n"
    "  --endpoint-temperature T (default 1.0)                 --endpoint-max-tokens N (default 256)\n"
    "  --judge               also ask the endpoint about each answer the rules call wrong; 'yes' drops it\n"
    "model source (k sampled answers per question, verified against the reference; the wrong ones kept):\n"
    "  --model DIR           a phantom checkpoint (config.json, safetensors, tokenizer)\n"
    "  --k-model K           samples per question (default 4 with --model, else 0)\n"
    "  --batch-size B        rows generated together (default 16)   --max-new-tokens N (default 64)\n"
    "  --temperature T (default 1.0)  --top-p P  --top-k K  --seed S  --threads N  --device D  --max-tiles N\n";

int cmd_data_triples(int argc, char** argv) {
  Args a = parse_args(argc, argv, 3,
                      {"input", "out", "format", "image-root", "config", "endpoint", "api-model", "api-key-env",
                       "k-endpoint", "concurrency", "retries", "backoff", "timeout", "cache", "endpoint-temperature",
                       "endpoint-max-tokens", "model", "k-model", "batch-size", "max-new-tokens", "temperature",
                       "top-p", "top-k", "seed", "threads", "device", "max-tiles", "tokenizer", "image-placement", "multi-image",
                       "limit", "chunk"},
                      {"help", "judge"});
  if (a.has("help")) {
    std::fputs(kTriplesHelp, stdout);
    return 0;
  }
  // Where the rows come from: a run config's data section, flags over it.
  data::DataConfig dc;
  dc.format = "conversations";
  if (a.has("config")) dc = recipe::load_run_config(a.require("config"), a.overrides).data;
  else if (!a.overrides.empty()) throw UsageError("key=value overrides need --config (the data.* keys of a run config)");
  const std::string input = a.get("input", dc.train);
  if (input.empty()) throw UsageError("no input: --input FILE, or --config with data.train");
  dc.format = a.get("format", dc.format);
  if (dc.format != "conversations" && dc.format != "preference" && dc.format != "internvl_meta")
    throw UsageError("--format must be conversations, preference or internvl_meta, not '" + dc.format + "'");
  dc.image_root = a.get("image-root", dc.image_root);
  dc.on_error = "skip";  // unreadable rows are counted and named, the others become triples

  triples::BuildOptions opts;
  opts.out_path = a.require("out");
  opts.data = dc;
  opts.endpoint_k = int_flag(a, "k-endpoint", a.has("endpoint") ? 1 : 0, 0, 64);
  opts.endpoint_temperature = number_flag(a, "endpoint-temperature", 1.0, 0, 2);
  opts.endpoint_max_tokens = int_flag(a, "endpoint-max-tokens", 256, 1);
  opts.endpoint_judge = a.has("judge");
  opts.model_k = int_flag(a, "k-model", a.has("model") ? 4 : 0, 0, 256);
  opts.chunk = int_flag(a, "chunk", 64, 1);
  opts.limit = int_flag(a, "limit", 0, 0);
  if ((opts.endpoint_k > 0 || opts.endpoint_judge) && !a.has("endpoint"))
    throw UsageError("--k-endpoint and --judge need --endpoint URL and --api-model NAME");
  if (opts.model_k > 0 && !a.has("model")) throw UsageError("--k-model needs --model DIR");
  if (opts.endpoint_k == 0 && opts.model_k == 0)
    throw UsageError("no source of rejected answers: give --endpoint URL --api-model NAME, or --model DIR, or both");

  std::unique_ptr<triples::ChatEndpoint> endpoint;
  if (a.has("endpoint")) {
    triples::EndpointOptions eo;
    eo.base_url = a.require("endpoint");
    eo.model = a.require("api-model");
    if (const char* key = std::getenv(a.get("api-key-env", "OPENAI_API_KEY").c_str())) eo.api_key = key;
    eo.cache_path = a.get("cache", opts.out_path + ".cache.jsonl");
    eo.concurrency = int_flag(a, "concurrency", 4, 1, 256);
    eo.retries = int_flag(a, "retries", 6, 0, 100);
    eo.backoff_s = number_flag(a, "backoff", 1.0, 0, 600);
    eo.timeout_s = number_flag(a, "timeout", 120, 0.001, 3600);
    endpoint = std::make_unique<triples::ChatEndpoint>(eo);
  }
  GenerationConfig gc;  // checked before the model is loaded
  gc.do_sample = true;
  gc.max_new_tokens = int_flag(a, "max-new-tokens", 64, 1);
  gc.temperature = number_flag(a, "temperature", 1.0, 1e-6);
  gc.top_p = number_flag(a, "top-p", 1.0, 1e-6, 1);
  gc.top_k = int_flag(a, "top-k", 0, 0);
  gc.seed = static_cast<uint64_t>(int_flag(a, "seed", 0, 0));
  const int64_t batch_rows = int_flag(a, "batch-size", 16, 1);

  data::SkipCounts skipped;
  const auto samples = data::read_annotations(input, dc, skipped);
  const std::string hint = data::format_mismatch_hint(input, dc, a.has("format") || !a.has("config") ? "--format" : "data.format");
  if (samples.empty())
    throw std::runtime_error("no readable rows in " + input + " (" + skipped.summary() + ")" + (hint.empty() ? "" : "; " + hint));
  if (!hint.empty()) std::printf("warning: %s\n", hint.c_str());

  Loaded loaded;
  triples::ModelSampler sampler;
  if (opts.model_k > 0) {
    set_threads(threads_flag(a));
    loaded = load_for_inference(a);
    sampler = triples::model_sampler(*loaded.model, *loaded.tok, *loaded.enc, loaded.tiles, gc, batch_rows);
  }
  util::StopOnSignals stop_on_signals;  // Ctrl-C: the chunk in flight is lost, the rows and cache kept
  const auto rep = triples::build_triples(samples, opts, endpoint.get(), sampler);
  std::printf("%s", rep.text().c_str());
  if (skipped.total()) {
    std::printf("unreadable input rows: %s\n", skipped.summary().c_str());
    for (size_t i = 0; i < std::min<size_t>(5, skipped.examples.size()); ++i) std::printf("  %s\n", skipped.examples[i].c_str());
  }
  if (endpoint) {
    const auto& s = endpoint->stats();
    std::printf("endpoint %s (%s): %lld requests sent (%lld retries), %lld answered, %lld from the cache; tokens: "
                "%lld prompt, %lld completion\n",
                endpoint->options().base_url.c_str(), endpoint->options().model.c_str(), static_cast<long long>(s.sent.load()),
                static_cast<long long>(s.retried.load()), static_cast<long long>(s.answered.load()),
                static_cast<long long>(s.cache_hits.load()), static_cast<long long>(s.prompt_tokens.load()),
                static_cast<long long>(s.completion_tokens.load()));
  }
  if (rep.triples_out == 0 && rep.already_done == 0) {  // nothing to train on: not a success
    std::fprintf(stderr, "error: no triple written to %s: every question's candidates were dropped or none was "
                 "processed (the report above says why)\n", opts.out_path.c_str());
    return 1;
  }
  std::printf("wrote %s\n", opts.out_path.c_str());
  return 0;
}

}  // namespace phantom::cli
