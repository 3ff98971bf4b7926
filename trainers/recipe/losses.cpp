#include "trainers/recipe/losses.h"

#include "trainers/recipe/head_loss.h"

namespace phantom::recipe {
namespace F = torch::nn::functional;

at::Tensor token_logps(const at::Tensor& hidden, const data::Targets& t,
                       const std::function<at::Tensor(const at::Tensor&)>& lm_head) {
  auto dev = hidden.device();
  auto rows = hidden.index({t.row.to(dev), t.pred.to(dev)});  // (T, C)
  auto logits = lm_head(rows).to(torch::kFloat);              // (T, V)
  return logits.log_softmax(-1).gather(1, t.target.to(dev).unsqueeze(1)).squeeze(1);
}

LossOut compute_loss(const at::Tensor& logp, const data::Batch& b, const LossConfig& c, const StepCounts& g,
                     const at::Tensor& ref_logps) {
  LossOut out;
  auto dev = logp.device();
  auto seg = b.targets.segment.to(dev);

  if (!b.preference) {
    TORCH_CHECK(c.kind == LossKind::sft, "loss '", loss_kind_name(c.kind),
                "' needs preference data (question, chosen, rejected)");
    out.loss = -logp.sum() / static_cast<double>(std::max<int64_t>(1, g.sft_tokens));
    out.sums["sft"] = -logp.sum().item<double>();
    out.sums["tokens"] = static_cast<double>(logp.numel());
    return out;
  }

  // Per answer: summed log-prob and length.
  const int64_t S = b.targets.num_segments;
  auto seg_logp = torch::zeros({S}, logp.options()).index_add(0, seg, logp);
  auto seg_len = torch::zeros({S}, logp.options()).index_add(0, seg, torch::ones_like(logp));
  auto is_chosen = b.seg_answer.to(dev).eq(0);
  auto q_of = b.seg_question.to(dev);

  // Chosen and rejected indices; pairs (chosen of q, each rejected of q).
  auto chosen_idx = is_chosen.nonzero().squeeze(1);     // (Q,)  one per question, in question order
  auto rejected_idx = is_chosen.logical_not().nonzero().squeeze(1);
  auto pair_q = q_of.index_select(0, rejected_idx);      // question of each pair
  auto pair_c = chosen_idx.index_select(0, pair_q);      // its chosen segment

  // Cross-entropy over the chosen answers' tokens (token mean over the step).
  auto token_is_chosen = is_chosen.index_select(0, seg);
  auto ce_sum = -(logp * token_is_chosen.to(logp.scalar_type())).sum();
  const double n_tok = static_cast<double>(std::max<int64_t>(1, g.sft_tokens));
  const double n_q = static_cast<double>(std::max<int64_t>(1, g.questions));

  at::Tensor pair_loss, reward_c, reward_r;
  auto avg = seg_logp / seg_len;
  switch (c.kind) {
    case LossKind::sft:  // an sft stage on triples: the SimPO term is reported (not trained) beside the CE
    case LossKind::po:
    case LossKind::simpo:
      reward_c = c.beta * avg.index_select(0, pair_c);
      reward_r = c.beta * avg.index_select(0, rejected_idx);
      pair_loss = -F::logsigmoid(reward_c - reward_r - c.gamma);
      break;
    case LossKind::dpo:
    case LossKind::ipo: {
      TORCH_CHECK(ref_logps.defined(), loss_kind_name(c.kind), " needs reference log-probabilities (precomputed)");
      auto ratio = seg_logp - ref_logps.to(dev);
      reward_c = c.beta * ratio.index_select(0, pair_c);
      reward_r = c.beta * ratio.index_select(0, rejected_idx);
      if (c.kind == LossKind::dpo) {
        pair_loss = -F::logsigmoid(reward_c - reward_r);
      } else {  // IPO: squared distance of the log-ratio margin to 1/(2 beta)
        auto h = ratio.index_select(0, pair_c) - ratio.index_select(0, rejected_idx);
        pair_loss = (h - 1.0 / (2.0 * c.beta)).pow(2);
      }
      break;
    }
    case LossKind::orpo: {
      // log odds(y) = avg logp - log(1 - exp(avg logp)); ORPO's term is -log sigmoid(log odds ratio), weighted by
      // lambda (loss_weights). The rewards reported are TRL's: beta * avg logp.
      auto log_odds = avg - torch::log1p(-torch::exp(avg).clamp_max(1.0 - 1e-6));
      reward_c = c.beta * avg.index_select(0, pair_c);
      reward_r = c.beta * avg.index_select(0, rejected_idx);
      pair_loss = -F::logsigmoid(log_odds.index_select(0, pair_c) - log_odds.index_select(0, rejected_idx));
      break;
    }
  }
  // Mean over each question's pairs, then sum over questions (divided by the global question count below).
  auto pairs_per_q = torch::zeros({b.num_questions}, logp.options()).index_add(0, pair_q, torch::ones_like(pair_loss));
  auto per_q = torch::zeros({b.num_questions}, logp.options()).index_add(0, pair_q, pair_loss) / pairs_per_q.clamp_min(1);
  auto pref_sum = per_q.sum();

  const LossWeights w = loss_weights(c);
  out.loss = torch::zeros({}, logp.options());
  if (w.sft != 0) out.loss = out.loss + w.sft * ce_sum / n_tok;
  if (w.pref != 0) out.loss = out.loss + w.pref * pref_sum / n_q;

  // Metric sums, TRL's names; per pair for rewards, per answer for logps (summed log-probs, as TRL's DPO).
  torch::NoGradGuard ng;
  const double n_pairs = static_cast<double>(pair_loss.numel());
  out.sums["sft"] = ce_sum.item<double>();
  out.sums["tokens"] = token_is_chosen.sum().item<double>();
  out.sums["pref"] = pref_sum.item<double>();
  out.sums["questions"] = static_cast<double>(b.num_questions);
  out.sums["pairs"] = n_pairs;
  out.sums["rewards/chosen"] = reward_c.sum().item<double>();
  out.sums["rewards/rejected"] = reward_r.sum().item<double>();
  out.sums["rewards/margins"] = (reward_c - reward_r).sum().item<double>();
  out.sums["rewards/accuracies"] = (reward_c > reward_r).to(torch::kFloat).sum().item<double>();
  out.sums["logps/chosen"] = seg_logp.index_select(0, chosen_idx).sum().item<double>();
  out.sums["logps/rejected"] = seg_logp.index_select(0, rejected_idx).sum().item<double>();
  out.sums["answers/rejected"] = static_cast<double>(rejected_idx.numel());
  return out;
}

namespace {

// The output projection as one matrix, when the chunked head applies: not with an adapter or int8 storage on
// lm_head (those run through the module, unchunked).
at::Tensor plain_head_weight(DecoderLMImpl& lm) {
  if (!lm.lm_head) return lm.embed_tokens->weight;  // tied embeddings
  if (lm.lm_head->has_lora() || lm.lm_head->is_int8()) return {};
  return lm.lm_head->weight;
}

// Final hidden states of the supervised rows' predecessors (T, C) -- the only rows the head runs on.
at::Tensor supervised_rows(PhantomModelImpl& model, const data::Batch& b) {
  ModelInputs mi;
  mi.input_ids = b.input_ids;
  mi.attention_mask = b.attention_mask;
  mi.positions = b.positions;
  mi.segments = b.segments;
  mi.pixel_values = b.pixel_values;
  auto hidden = model.forward_hidden(mi);
  auto dev = hidden.device();
  return hidden.index({b.targets.row.to(dev), b.targets.pred.to(dev)});
}

at::Tensor batch_token_logps(PhantomModelImpl& model, const data::Batch& b) {
  auto rows = supervised_rows(model, b);
  auto w = plain_head_weight(*model.language_model);
  if (w.defined()) return head_logps(rows, w, b.targets.target);
  auto logits = model.language_model->logits(rows).to(torch::kFloat);
  return logits.log_softmax(-1).gather(1, b.targets.target.to(rows.device()).unsqueeze(1)).squeeze(1);
}

}  // namespace

LossOut batch_loss(PhantomModelImpl& model, const data::Batch& b, const LossConfig& lc, const StepCounts& counts,
                   const at::Tensor& ref_logps) {
  auto w = plain_head_weight(*model.language_model);
  if (!b.preference && lc.kind == LossKind::sft && w.defined()) {
    // SFT: the loss's gradient is known in the forward, so the head computes it there (head_loss.h).
    auto rows = supervised_rows(model, b);
    const double n = static_cast<double>(std::max<int64_t>(1, counts.sft_tokens));
    auto [loss, logp] = head_cross_entropy(rows, w, b.targets.target, 1.0 / n);
    LossOut out;
    out.loss = loss;
    out.sums["sft"] = -logp.sum().item<double>();
    out.sums["tokens"] = static_cast<double>(logp.numel());
    return out;
  }
  return compute_loss(batch_token_logps(model, b), b, lc, counts, ref_logps);
}

at::Tensor segment_logps(PhantomModelImpl& model, const data::Batch& b) {
  auto logp = batch_token_logps(model, b);
  auto seg = b.targets.segment.to(logp.device());
  return torch::zeros({b.targets.num_segments}, logp.options()).index_add(0, seg, logp);
}

}  // namespace phantom::recipe
