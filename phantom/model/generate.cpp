#include "phantom/model/generate.h"

#include <atomic>
#include <limits>

#include "phantom/util/logf.h"

namespace phantom {

namespace {

constexpr float kNeg = -1.0e9f;  // HF's "impossible" score

// Logits of the last position after a forward step that extends the cache.
at::Tensor step(DecoderLMImpl& lm, KVCache& cache, const at::Tensor& embeds, const at::Tensor& mask) {
  DecoderInputs in;
  in.embeds = embeds;
  in.attention_mask = mask;
  auto h = lm.forward_hidden(in, &cache);
  return lm.logits(h.select(1, h.size(1) - 1)).to(torch::kFloat);  // (B, V)
}

at::Tensor eos_hits(const at::Tensor& tokens, const std::vector<int64_t>& eos) {
  auto hit = torch::zeros_like(tokens, torch::kBool);
  for (auto e : eos) hit = hit | tokens.eq(e);
  return hit;
}

void forbid_eos(at::Tensor& scores, const std::vector<int64_t>& eos) {
  for (auto e : eos) scores.select(-1, e).fill_(-std::numeric_limits<float>::infinity());
}

// HF's order: temperature, top-k, top-p; then sample from the softmax.
at::Tensor sample(at::Tensor logits, const GenerationConfig& c, at::Generator& gen) {
  if (c.temperature != 1.0) logits = logits / c.temperature;
  const float ninf = -std::numeric_limits<float>::infinity();
  if (c.top_k > 0 && c.top_k < logits.size(-1)) {
    auto kth = std::get<0>(logits.topk(c.top_k, -1)).narrow(-1, c.top_k - 1, 1);
    logits = logits.masked_fill(logits < kth, ninf);
  }
  if (c.top_p < 1.0) {
    auto [sorted, idx] = logits.sort(-1, /*descending=*/false);
    auto cum = sorted.softmax(-1).cumsum(-1);
    auto remove = cum <= (1.0 - c.top_p);
    remove.select(-1, remove.size(-1) - 1).fill_(false);  // keep at least one token
    logits = logits.masked_fill(remove.scatter(-1, idx, remove), ninf);
  }
  return torch::multinomial(logits.softmax(-1), 1, false, gen).squeeze(-1);
}

GenerationResult greedy_or_sample(DecoderLMImpl& lm, const at::Tensor& embeds, const at::Tensor& mask0,
                                  const GenerationConfig& c, const TokenCallback& cb) {
  const int64_t B = embeds.size(0);
  auto cache = lm.new_cache();
  auto logits = step(lm, cache, embeds, mask0);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  auto finished = torch::zeros({B}, torch::kBool);
  GenerationResult r;
  r.tokens.resize(static_cast<size_t>(B));
  r.scores.assign(static_cast<size_t>(B), 0.0);
  for (int64_t t = 0; t < c.max_new_tokens; ++t) {
    auto scores = logits.cpu();
    if (t < c.min_new_tokens) forbid_eos(scores, c.eos_token_ids);
    auto next = c.do_sample ? sample(scores, c, gen) : scores.argmax(-1);
    auto logp = scores.log_softmax(-1).gather(1, next.unsqueeze(1)).squeeze(1);
    std::vector<int64_t> produced(static_cast<size_t>(B), -1);
    auto nx = next.accessor<int64_t, 1>();
    auto fin = finished.accessor<bool, 1>();
    for (int64_t b = 0; b < B; ++b) {
      if (fin[b]) continue;
      r.tokens[b].push_back(nx[b]);
      r.scores[b] += logp[b].item<double>();
      produced[b] = nx[b];
    }
    if (cb) cb(produced);
    finished = finished | eos_hits(next, c.eos_token_ids);
    if (finished.all().item<bool>() || t + 1 == c.max_new_tokens) break;
    auto ids = next.to(embeds.device()).unsqueeze(1);
    logits = step(lm, cache, lm.embed(ids), torch::ones({B, 1}, mask0.options()));
  }
  return r;
}

// HF's vectorised beam search (generation/utils.py `_beam_search`, transformers 4.57), on our cache.
GenerationResult beam_search(DecoderLMImpl& lm, const at::Tensor& embeds, const at::Tensor& mask0,
                             const GenerationConfig& c) {
  const int64_t B = embeds.size(0), nb = c.num_beams, V = lm.cfg.vocab_size, T = c.max_new_tokens;
  const int64_t n_eos = static_cast<int64_t>(c.eos_token_ids.size());
  const int64_t keep = std::max<int64_t>(2, 1 + n_eos) * nb;
  auto cache = lm.new_cache();
  auto logits = step(lm, cache, embeds, mask0);  // prefill once per prompt, then copy the cache to every beam
  auto expand = torch::arange(B, torch::kInt64).repeat_interleave(nb).to(embeds.device());
  cache.select(expand);
  logits = logits.index_select(0, expand);

  auto running = torch::full({B, nb, T}, -1, torch::kInt64);  // generated tokens only
  auto running_scores = torch::zeros({B, nb});
  running_scores.narrow(1, 1, nb - 1).fill_(kNeg);
  auto seqs = running.clone();
  auto beam_scores = torch::full({B, nb}, kNeg);
  auto finished = torch::zeros({B, nb}, torch::kBool);
  auto heuristic_unsatisfied = torch::ones({B, 1}, torch::kBool);
  auto top_mask = torch::cat({torch::ones({nb}, torch::kBool), torch::zeros({keep - nb}, torch::kBool)});
  auto gather = [](const at::Tensor& x, const at::Tensor& idx) {  // x (B, K, ...), idx (B, k)
    auto i = idx;
    for (int64_t d = 2; d < x.dim(); ++d) i = i.unsqueeze(-1);
    std::vector<int64_t> shape = x.sizes().vec();
    shape[1] = idx.size(1);
    return x.gather(1, i.expand(shape));
  };

  for (int64_t t = 0; t < T; ++t) {
    auto logp = logits.cpu().log_softmax(-1);
    if (t < c.min_new_tokens) forbid_eos(logp, c.eos_token_ids);
    logp = (logp.view({B, nb, V}) + running_scores.unsqueeze(-1)).view({B, nb * V});
    auto [topk_logp, topk_idx] = logp.topk(keep, -1);
    auto beam_of = topk_idx.div(V, "floor"), token = topk_idx.remainder(V);
    auto topk_seqs = gather(running, beam_of);
    topk_seqs.select(2, t).copy_(token);
    auto hits = eos_hits(token, c.eos_token_ids);
    if (t + 1 >= T) hits.fill_(true);  // max length reached

    // Continue with the best num_beams candidates that did not finish.
    auto run_logp = topk_logp + hits.to(torch::kFloat) * kNeg;
    auto next_idx = std::get<1>(run_logp.topk(nb, -1));
    running = gather(topk_seqs, next_idx);
    running_scores = gather(run_logp, next_idx);
    auto parent = gather(beam_of, next_idx);

    // Finished candidates among the top num_beams compete for the final slots.
    auto just_finished = hits & top_mask.unsqueeze(0);
    auto fin_logp = topk_logp / std::pow(static_cast<double>(t + 1), c.length_penalty);
    fin_logp = fin_logp + finished.all(-1, true).to(torch::kFloat) * kNeg;  // early_stopping=True
    fin_logp = fin_logp + heuristic_unsatisfied.logical_not().to(torch::kFloat) * kNeg;
    fin_logp = fin_logp + just_finished.logical_not().to(torch::kFloat) * kNeg;
    auto merged_seqs = torch::cat({seqs, topk_seqs}, 1);
    auto merged_scores = torch::cat({beam_scores, fin_logp}, 1);
    auto merged_fin = torch::cat({finished, just_finished}, 1);
    auto best = std::get<1>(merged_scores.topk(nb, -1));
    seqs = gather(merged_seqs, best);
    beam_scores = gather(merged_scores, best);
    finished = gather(merged_fin, best);

    // Early-stop heuristic (early_stopping=True: the running best at the current length).
    auto best_running = running_scores.narrow(1, 0, 1) / std::pow(static_cast<double>(t + 1), c.length_penalty);
    auto worst_finished = torch::where(finished, std::get<0>(beam_scores.min(1, true)), torch::full({B, 1}, kNeg));
    heuristic_unsatisfied = heuristic_unsatisfied & (best_running > worst_finished).any(-1, true);
    const bool improvement = heuristic_unsatisfied.any().item<bool>();
    const bool open = !finished.all().item<bool>();
    const bool valid = !hits.all().item<bool>();
    if (!(improvement && open && valid)) break;

    auto flat_parent = (parent + torch::arange(B, torch::kInt64).unsqueeze(1) * nb).view({-1});
    cache.select(flat_parent.to(embeds.device()));
    auto ids = running.select(2, t).reshape({B * nb, 1}).to(embeds.device());
    logits = step(lm, cache, lm.embed(ids), torch::ones({B * nb, 1}, mask0.options()));
  }

  GenerationResult r;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> toks;
    auto row = seqs[b][0];
    for (int64_t t = 0; t < T; ++t) {
      const int64_t id = row[t].item<int64_t>();
      if (id < 0) break;
      toks.push_back(id);
      bool is_eos = false;
      for (auto e : c.eos_token_ids) is_eos |= (id == e);
      if (is_eos) break;
    }
    r.tokens.push_back(std::move(toks));
    r.scores.push_back(beam_scores[b][0].item<double>());
  }
  return r;
}

}  // namespace

GenerationResult generate(DecoderLMImpl& lm, const at::Tensor& prompt_embeds, const at::Tensor& attention_mask,
                          const GenerationConfig& cfg, const TokenCallback& on_tokens) {
  TORCH_CHECK(cfg.max_new_tokens > 0, "generate: max_new_tokens must be positive");
  const int64_t vocab = lm.cfg.vocab_size;
  for (auto e : cfg.eos_token_ids)
    if (e < 0 || e >= vocab)
      throw std::runtime_error("generate: end token id " + std::to_string(e) + " is outside the vocabulary (0.." +
                               std::to_string(vocab - 1) + "): it could never be produced");
  // Positions past the model's context were never trained (RoPE extrapolates into noise): the prompt plus the new
  // tokens must fit max_position_embeddings. A longer request is cut to the room left, said once per process.
  const int64_t context = lm.cfg.max_position_embeddings, prompt = prompt_embeds.size(1);
  if (prompt >= context)
    throw std::runtime_error("generate: the prompt has " + std::to_string(prompt) + " tokens, the model's context (" +
                             "max_position_embeddings) is " + std::to_string(context) + ": no room for an answer");
  GenerationConfig c = cfg;
  if (c.max_new_tokens > context - prompt) {
    c.max_new_tokens = context - prompt;
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      log::warn("generate: max_new_tokens {} capped at {}: a {}-token prompt leaves that many positions of the "
                "model's context (max_position_embeddings {})",
                cfg.max_new_tokens, c.max_new_tokens, prompt, context);
  }
  c.min_new_tokens = std::min(c.min_new_tokens, c.max_new_tokens);
  torch::NoGradGuard ng;
  auto mask = attention_mask.defined() ? attention_mask
                                       : torch::ones({prompt_embeds.size(0), prompt_embeds.size(1)}, torch::kInt64);
  if (c.num_beams > 1) return beam_search(lm, prompt_embeds, mask, c);
  return greedy_or_sample(lm, prompt_embeds, mask, c, on_tokens);
}

}  // namespace phantom
