#include "trainers/recipe/head_loss.h"

#include <algorithm>

#include "phantom/model/runtime.h"

namespace phantom::recipe {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

int64_t head_chunk_rows(int64_t vocab, int64_t bytes) {
  return std::max<int64_t>(16, bytes / (4 * std::max<int64_t>(1, vocab)));
}

namespace {

// The matmul dtype: autocast's when it is on for this device (what lm_head(rows) would have run in), else the
// wider of the rows' and the weight's (a frozen head stored in bf16 under fp32 compute still runs in fp32). Inside the functions autocast is switched off and every cast is explicit, so forward and the
// backward recomputation (which runs outside any autocast scope) use the same precision.
c10::ScalarType matmul_dtype(const at::Tensor& weight, const at::Tensor& rows) {
  auto s = AutocastState::current();
  if (weight.is_cuda() && s.cuda) return s.cuda_dtype;
  if (weight.is_cpu() && s.cpu) return s.cpu_dtype;
  return c10::promoteTypes(weight.scalar_type(), rows.scalar_type());
}

// One chunk of the logits into `buf` (n, V) fp32: buf = h W^T.
void chunk_logits(at::Tensor& buf, const at::Tensor& h, const at::Tensor& w) {
  if (h.scalar_type() == at::kFloat) {
    at::mm_out(buf, h, w.t());
  } else {
    buf.copy_(at::mm(h, w.t()));
  }
}

// buf (logits) -> softmax in place, by ATen's softmax kernel (its own vectorised exp: logsumexp + exp_ went
// through MKL's VML exp, ~9 % of the 0.5B-shaped step by perf).
void softmax_in_place(at::Tensor& buf) { at::_softmax_out(buf, buf, 1, false); }

// buf (logits) -> softmax in place; returns the rows' logsumexp = max logit - log(max probability). The largest
// probability is >= 1/V, so its log carries only float rounding.
at::Tensor softmax_and_lse(at::Tensor& buf) {
  auto top = at::amax(buf, {1});
  softmax_in_place(buf);
  return top - at::amax(buf, {1}).log();
}

// grad_w += dl^T h, accumulated in fp32.
void accumulate_weight_grad(at::Tensor& grad_w, const at::Tensor& dl, const at::Tensor& h) {
  if (h.scalar_type() == at::kFloat) {
    grad_w.addmm_(dl.t(), h);
  } else {
    grad_w.add_(at::mm(dl.t().to(h.scalar_type()), h));
  }
}

at::Tensor rows_grad(const at::Tensor& dl, const at::Tensor& w) {
  return at::mm(w.scalar_type() == at::kFloat ? dl : dl.to(w.scalar_type()), w).to(at::kFloat);
}

struct Chunks {
  int64_t T, n;
  int64_t count() const { return (T + n - 1) / n; }
  int64_t start(int64_t i) const { return i * n; }
  int64_t size(int64_t i) const { return std::min(n, T - i * n); }
};

// The loop of the three passes below: for each chunk of `chunk` rows of h, its logits h W^T into one reused
// (chunk, V) fp32 buffer, then body(start, n, logits, targets (n, 1)); body may overwrite the buffer.
template <class Body>
void over_chunks(const at::Tensor& h, const at::Tensor& w, const at::Tensor& target, int64_t chunk, Body&& body) {
  const Chunks ch{h.size(0), chunk};
  auto buf = torch::empty({std::min(chunk, ch.T), w.size(0)}, h.options().dtype(at::kFloat));
  for (int64_t i = 0; i < ch.count(); ++i) {
    const int64_t s = ch.start(i), n = ch.size(i);
    auto b = buf.narrow(0, 0, n);
    chunk_logits(b, h.narrow(0, s, n), w);
    body(s, n, b, target.narrow(0, s, n).unsqueeze(1));
  }
}

// logits b -> softmax in place, and each row's target log-prob into `logp` (n,).
void softmax_and_target_logp(at::Tensor& b, const at::Tensor& y, at::Tensor logp) {
  auto target_logit = b.gather(1, y).squeeze(1);
  logp.copy_(target_logit - softmax_and_lse(b));
}

struct HeadLogps : torch::autograd::Function<HeadLogps> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& rows, const at::Tensor& weight,
                            const at::Tensor& target, int64_t chunk, bool need_rows, bool need_w) {
    const auto cd = matmul_dtype(weight, rows);
    AutocastScope off{AutocastState{}};
    auto h = rows.to(cd), w = weight.to(cd);
    const int64_t T = rows.size(0);
    auto f32 = rows.options().dtype(at::kFloat);
    auto logp = torch::empty({T}, f32);
    const bool keep_g = need_rows && !need_w;  // frozen head: d logp / d h per row, from the forward
    at::Tensor G = keep_g ? torch::empty({T, rows.size(1)}, f32) : at::Tensor();
    over_chunks(h, w, target, chunk, [&](int64_t s, int64_t n, at::Tensor& b, const at::Tensor& y) {
      softmax_and_target_logp(b, y, logp.narrow(0, s, n));
      if (keep_g) G.narrow(0, s, n).copy_(w.index_select(0, y.squeeze(1)).to(at::kFloat) - rows_grad(b, w));
    });
    if (keep_g) {
      ctx->save_for_backward({G});
    } else if (need_rows || need_w) {
      ctx->save_for_backward({rows, weight, target});
    }
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["keep_g"] = keep_g;
    ctx->saved_data["need_rows"] = need_rows;
    ctx->saved_data["need_w"] = need_w;
    ctx->saved_data["dtype"] = static_cast<int64_t>(cd);
    return logp;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto g = grads[0].to(at::kFloat);  // (T,)
    auto saved = ctx->get_saved_variables();
    const bool need_rows = ctx->saved_data["need_rows"].toBool(), need_w = ctx->saved_data["need_w"].toBool();
    if (ctx->saved_data["keep_g"].toBool()) {
      auto& G = saved[0];
      return {g.unsqueeze(1) * G, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const auto cd = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    auto &rows = saved[0], &weight = saved[1], &target = saved[2];
    auto h = rows.to(cd), w = weight.to(cd);
    const int64_t T = rows.size(0), V = weight.size(0);
    auto f32 = rows.options().dtype(at::kFloat);
    at::Tensor grad_rows = need_rows ? torch::empty({T, rows.size(1)}, f32) : at::Tensor();
    at::Tensor grad_w = need_w ? torch::zeros({V, weight.size(1)}, f32) : at::Tensor();
    over_chunks(h, w, target, chunk, [&](int64_t s, int64_t n, at::Tensor& b, const at::Tensor& y) {
      auto gc = g.narrow(0, s, n).unsqueeze(1);
      softmax_in_place(b);
      b.mul_(-gc).scatter_add_(1, y, gc);  // d logp / d logits = onehot - softmax, times the row's gradient
      if (need_rows) grad_rows.narrow(0, s, n).copy_(rows_grad(b, w));
      if (need_w) accumulate_weight_grad(grad_w, b, h.narrow(0, s, n));
    });
    return {need_rows ? grad_rows.to(rows.scalar_type()) : at::Tensor(),
            need_w ? grad_w.to(weight.scalar_type()) : at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct HeadCrossEntropy : torch::autograd::Function<HeadCrossEntropy> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& rows, const at::Tensor& weight,
                               const at::Tensor& target, double scale, int64_t chunk, bool need_rows, bool need_w) {
    const auto cd = matmul_dtype(weight, rows);
    AutocastScope off{AutocastState{}};
    auto h = rows.to(cd), w = weight.to(cd);
    const int64_t T = rows.size(0), V = weight.size(0);
    auto f32 = rows.options().dtype(at::kFloat);
    auto logp = torch::empty({T}, f32);
    at::Tensor grad_rows = need_rows ? torch::empty({T, rows.size(1)}, f32) : at::Tensor();
    at::Tensor grad_w = need_w ? torch::zeros({V, weight.size(1)}, f32) : at::Tensor();
    over_chunks(h, w, target, chunk, [&](int64_t s, int64_t n, at::Tensor& b, const at::Tensor& y) {
      softmax_and_target_logp(b, y, logp.narrow(0, s, n));
      if (!need_rows && !need_w) return;
      // loss = -scale * sum logp  ->  d loss / d logits = scale * (softmax - onehot)
      b.mul_(scale).scatter_add_(1, y, torch::full({n, 1}, -scale, f32));
      if (need_rows) grad_rows.narrow(0, s, n).copy_(rows_grad(b, w));
      if (need_w) accumulate_weight_grad(grad_w, b, h.narrow(0, s, n));
    });
    auto loss = -scale * logp.sum();
    ctx->save_for_backward({need_rows ? grad_rows.to(rows.scalar_type()) : at::Tensor(),
                            need_w ? grad_w.to(weight.scalar_type()) : at::Tensor()});
    ctx->mark_non_differentiable({logp});
    return {loss, logp};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto g = grads[0];
    const bool unit = g.defined() && g.numel() == 1 && g.item<double>() == 1.0;
    auto times = [&](const at::Tensor& t) { return !t.defined() ? t : unit ? t : t * g.to(t.scalar_type()); };
    return {times(saved[0]), times(saved[1]), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool needs(const at::Tensor& t) { return torch::GradMode::is_enabled() && t.requires_grad(); }

}  // namespace

at::Tensor head_logps(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& target, int64_t chunk) {
  if (chunk <= 0) chunk = head_chunk_rows(weight.size(0));
  return HeadLogps::apply(rows, weight, target.to(rows.device()), chunk, needs(rows), needs(weight));
}

std::pair<at::Tensor, at::Tensor> head_cross_entropy(const at::Tensor& rows, const at::Tensor& weight,
                                                     const at::Tensor& target, double scale, int64_t chunk) {
  if (chunk <= 0) chunk = head_chunk_rows(weight.size(0));
  auto out = HeadCrossEntropy::apply(rows, weight, target.to(rows.device()), scale, chunk, needs(rows), needs(weight));
  return {out[0], out[1]};
}

}  // namespace phantom::recipe
