// An OpenAI-compatible chat-completions client (POST {base_url}/chat/completions, libcurl): the endpoint source of
// the triple builder and its optional judge. Every request is keyed by the SHA-256 of its JSON body (model,
// messages, temperature, max_tokens, seed) and its reply appended to a cache file as soon as it arrives, so a rerun
// sends nothing already answered and a killed run resumes with the rest. Transient failures (no connection, a
// timeout, HTTP 429 and 5xx) are retried with exponential backoff, a server's Retry-After (seconds) honoured; any
// other HTTP error stops the run with the server's message. Up to `concurrency` requests are in flight at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace phantom::triples {

struct EndpointOptions {
  std::string base_url;      // e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1
  std::string model;         // the "model" of every request
  std::string api_key;       // sent as "Authorization: Bearer ..." when not empty
  std::string cache_path;    // JSONL {key, reply, usage}; empty: no cache
  int64_t concurrency = 4;   // requests in flight at once
  int64_t retries = 6;       // retries of a transient failure before the run stops
  double backoff_s = 1.0;    // first retry after this, doubling each time (capped at 60 s)
  double timeout_s = 120.0;  // one request
};

struct ChatRequest {
  std::vector<std::pair<std::string, std::string>> messages;  // (role, content)
  double temperature = 1.0;
  int64_t max_tokens = 256;
  int64_t seed = 0;  // the k-th sample of one prompt: part of the body, hence of the cache key
};

// Counters of one run, printed at its end.
struct EndpointStats {
  std::atomic<int64_t> sent{0};         // HTTP requests made (retries included)
  std::atomic<int64_t> retried{0};      // of which were retries after a 429/5xx/connection failure
  std::atomic<int64_t> answered{0};     // requests answered by the endpoint in this run
  std::atomic<int64_t> cache_hits{0};   // requests answered from the cache (nothing sent)
  std::atomic<int64_t> prompt_tokens{0}, completion_tokens{0};  // the endpoint's "usage", this run's requests
};

class ChatEndpoint {
 public:
  explicit ChatEndpoint(EndpointOptions opts);
  // Every request's reply text, in order: from the cache, else from the endpoint (bounded concurrency). Throws
  // on a permanent failure, after the replies already received are cached.
  std::vector<std::string> complete(const std::vector<ChatRequest>& requests);
  const EndpointStats& stats() const { return stats_; }
  const EndpointOptions& options() const { return opts_; }
  // The request body (what is sent) and its cache key (hex SHA-256 of the body's canonical dump).
  std::string body(const ChatRequest& r) const;
  static std::string key_of(const std::string& body);

 private:
  std::string post(const std::string& body);  // one request, retried; the reply text
  void remember(const std::string& key, const std::string& reply, int64_t prompt_tokens, int64_t completion_tokens);
  EndpointOptions opts_;
  EndpointStats stats_;
  std::mutex mu_;                            // the cache map and file
  std::map<std::string, std::string> cache_;  // key -> reply text
};

}  // namespace phantom::triples
