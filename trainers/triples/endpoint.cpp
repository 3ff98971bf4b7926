#include "trainers/triples/endpoint.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "phantom/util/logf.h"
#include "phantom/util/stop.h"

namespace phantom::triples {
using nlohmann::json;

namespace {

// curl_global_init once per process, before any thread uses curl (it is not thread-safe itself).
void curl_global_once() {
  static const bool done = [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("libcurl failed to initialise");
    return true;
  }();
  (void)done;
}

size_t append_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// Retry-After in seconds (the HTTP-date form is rare from these servers and falls back to the backoff).
size_t read_header(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  std::string lower = line;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower.rfind("retry-after:", 0) == 0) {
    char* end = nullptr;
    const double s = std::strtod(line.c_str() + 12, &end);
    if (end != line.c_str() + 12 && std::isfinite(s) && s >= 0) *static_cast<double*>(out) = s;
  }
  return size * n;
}

// The endpoint's own message of an error reply ({"error": {"message": ...}}), else the start of the body.
std::string server_message(const std::string& body) {
  try {
    const auto j = json::parse(body);
    if (j.contains("error")) {
      const auto& e = j["error"];
      return e.is_object() && e.contains("message") ? e["message"].dump() : e.dump();
    }
  } catch (const json::exception&) {
  }
  return body.substr(0, 300);
}

void sleep_s(double s) {
  // In short slices, so that a stop request (Ctrl-C) is seen during a long Retry-After.
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(s);
  while (std::chrono::steady_clock::now() < until && !util::stop_requested())
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

}  // namespace

ChatEndpoint::ChatEndpoint(EndpointOptions opts) : opts_(std::move(opts)) {
  curl_global_once();
  if (opts_.base_url.empty()) throw std::runtime_error("the endpoint needs a base URL (--endpoint)");
  if (opts_.model.empty()) throw std::runtime_error("the endpoint needs a model name (--api-model)");
  while (!opts_.base_url.empty() && opts_.base_url.back() == '/') opts_.base_url.pop_back();
  if (opts_.cache_path.empty()) return;
  std::ifstream in(opts_.cache_path);
  std::string line;
  int64_t n = 0, unreadable = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = json::parse(line);
      cache_[j.at("key").get<std::string>()] = j.at("reply").get<std::string>();
    } catch (const json::exception&) {  // a line cut by a kill: that request is simply sent again
      ++unreadable;
    }
  }
  if (unreadable) log::warn("{}: {} unreadable cache line(s) ignored (cut by an interrupted run?)", opts_.cache_path, unreadable);
  if (!cache_.empty()) log::info("{}: {} cached replies", opts_.cache_path, cache_.size());
}

std::string ChatEndpoint::body(const ChatRequest& r) const {
  json messages = json::array();
  for (const auto& [role, content] : r.messages) messages.push_back({{"role", role}, {"content", content}});
  // nlohmann::json keeps object keys sorted: the dump is canonical, hence a stable cache key.
  return json{{"model", opts_.model}, {"messages", messages}, {"temperature", r.temperature},
              {"max_tokens", r.max_tokens}, {"seed", r.seed}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ChatEndpoint::key_of(const std::string& body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(body.data(), body.size(), digest, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += {hex[digest[i] >> 4], hex[digest[i] & 15]};
  return out;
}

void ChatEndpoint::remember(const std::string& key, const std::string& reply, int64_t prompt_tokens,
                            int64_t completion_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  cache_[key] = reply;
  if (opts_.cache_path.empty()) return;
  // One write of a whole line, flushed: a kill loses at most the line being written, which the reader skips.
  const std::string line = json{{"key", key}, {"reply", reply},
                                {"usage", {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}}}}
                               .dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  std::FILE* f = std::fopen(opts_.cache_path.c_str(), "ab");
  if (!f) throw std::runtime_error("cannot append to the endpoint cache " + opts_.cache_path);
  const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
  if (std::fclose(f) != 0 || !ok) throw std::runtime_error("cannot append to the endpoint cache " + opts_.cache_path);
}

// One request with its retries: a function of its own because the retry policy is the point of it.
std::string ChatEndpoint::post(const std::string& body) {
  const std::string url = opts_.base_url + "/chat/completions";
  CURL* curl = curl_easy_init();
  if (!curl) throw std::runtime_error("libcurl: cannot create a handle");
  struct Cleanup {
    CURL* c;
    curl_slist* h = nullptr;
    ~Cleanup() {
      curl_slist_free_all(h);
      curl_easy_cleanup(c);
    }
  } cleanup{curl};
  cleanup.h = curl_slist_append(cleanup.h, "Content-Type: application/json");
  if (!opts_.api_key.empty()) cleanup.h = curl_slist_append(cleanup.h, ("Authorization: Bearer " + opts_.api_key).c_str());
  std::string last_problem;
  for (int64_t attempt = 0; attempt <= opts_.retries; ++attempt) {
    if (util::stop_requested()) throw util::Stopped("endpoint requests stopped by a signal");
    std::string reply;
    double retry_after = -1;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, cleanup.h);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, read_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &retry_after);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout_s * 1000));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
    ++stats_.sent;
    if (attempt > 0) ++stats_.retried;
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status == 200) {
      json j;
      try {
        j = json::parse(reply);
        const auto& choice = j.at("choices").at(0).at("message").at("content");
        const std::string text = choice.is_string() ? choice.get<std::string>() : "";
        int64_t pt = 0, ct = 0;
        if (j.contains("usage") && j["usage"].is_object()) {
          pt = j["usage"].value("prompt_tokens", int64_t{0});
          ct = j["usage"].value("completion_tokens", int64_t{0});
        }
        stats_.prompt_tokens += pt, stats_.completion_tokens += ct, ++stats_.answered;
        remember(key_of(body), text, pt, ct);
        return text;
      } catch (const json::exception& e) {
        throw std::runtime_error(url + " answered 200 without choices[0].message.content: " + reply.substr(0, 300));
      }
    }
    const bool transient = rc != CURLE_OK || status == 429 || status >= 500;
    last_problem = rc != CURLE_OK ? std::string(curl_easy_strerror(rc))
                                  : "HTTP " + std::to_string(status) + ": " + server_message(reply);
    if (!transient) throw std::runtime_error(url + ": " + last_problem);
    if (attempt == opts_.retries) break;
    const double wait = retry_after >= 0 ? retry_after : std::min(60.0, opts_.backoff_s * std::pow(2.0, double(attempt)));
    log::debug("{}: {}; retry {} in {:.2f} s", url, last_problem, attempt + 1, wait);
    sleep_s(wait);
  }
  throw std::runtime_error(url + ": gave up after " + std::to_string(opts_.retries) + " retries; last: " + last_problem +
                           " (the replies received so far are cached: a rerun sends only the rest)");
}

std::vector<std::string> ChatEndpoint::complete(const std::vector<ChatRequest>& requests) {
  std::vector<std::string> replies(requests.size());
  std::vector<size_t> todo;
  std::vector<std::string> bodies(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    bodies[i] = body(requests[i]);
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = cache_.find(key_of(bodies[i])); it != cache_.end()) {
      replies[i] = it->second;
      ++stats_.cache_hits;
    } else {
      todo.push_back(i);
    }
  }
  // Identical requests in one call are sent once (the same body is the same answer, by the cache's definition).
  std::map<std::string, std::vector<size_t>> same;
  std::vector<size_t> unique;
  for (size_t i : todo) {
    auto& v = same[bodies[i]];
    if (v.empty()) unique.push_back(i);
    v.push_back(i);
  }
  std::atomic<size_t> next{0};
  std::mutex err_mu;
  std::string first_error;
  bool stopped = false;
  auto worker = [&] {
    for (size_t u; (u = next++) < unique.size();) {
      {
        std::lock_guard<std::mutex> lock(err_mu);
        if (!first_error.empty() || stopped) return;
      }
      const size_t i = unique[u];
      try {
        const std::string text = post(bodies[i]);
        for (size_t j : same[bodies[i]]) replies[j] = text;
      } catch (const util::Stopped&) {
        std::lock_guard<std::mutex> lock(err_mu);
        stopped = true;
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (first_error.empty()) first_error = e.what();
      }
    }
  };
  const auto n_threads = static_cast<size_t>(std::max<int64_t>(1, std::min<int64_t>(opts_.concurrency, int64_t(unique.size()))));
  std::vector<std::thread> pool;
  for (size_t t = 0; t < n_threads && !unique.empty(); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (!first_error.empty()) throw std::runtime_error(first_error);
  if (stopped) throw util::Stopped("endpoint requests stopped by a signal (the replies received so far are cached)");
  return replies;
}

}  // namespace phantom::triples
