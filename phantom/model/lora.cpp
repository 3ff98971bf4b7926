#include "phantom/model/lora.h"

#include "phantom/model/frozen_storage.h"

#include <cmath>
#include <regex>
#include <stdexcept>

namespace phantom {

namespace {

at::Tensor dequant(const at::Tensor& q, const at::Tensor& scale, c10::ScalarType dtype) {
  return (q.to(torch::kFloat) * scale.unsqueeze(1)).to(dtype);
}

// x @ W^T with W dequantised from int8 in forward and again in backward: autograd keeps only the int8 tensors, not
// a float copy of the weight per layer. Gradient w.r.t. x only (the weight is frozen).
struct Int8Matmul : torch::autograd::Function<Int8Matmul> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& q,
                            const at::Tensor& scale) {
    ctx->save_for_backward({q, scale});
    return at::linear(x, dequant(q, scale, x.scalar_type()));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    const auto& g = grad_out[0];
    return {g.matmul(dequant(saved[0], saved[1], g.scalar_type())), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

Int8WeightImpl::Int8WeightImpl(const at::Tensor& w) : dtype(w.scalar_type()) {
  torch::NoGradGuard ng;
  auto wf = w.detach().to(torch::kFloat);
  auto s = wf.abs().amax(1) / 127.0;
  s = torch::where(s > 0, s, torch::ones_like(s));  // an all-zero row stays zero with any scale
  auto q = torch::round(wf / s.unsqueeze(1)).clamp(-127, 127).to(torch::kInt8);
  weight = register_buffer("weight", q);
  scale = register_buffer("scale", s);
}

at::Tensor Int8WeightImpl::dequantize(c10::ScalarType dt) const { return dequant(weight, scale, dt); }

// The storage stays int8 + fp32; the dtype it dequantises to on merge follows the model.
void Int8WeightImpl::to(torch::Dtype dt, bool) { dtype = dt; }

void Int8WeightImpl::to(torch::Device device, torch::Dtype dt, bool non_blocking) {
  torch::nn::Module::to(device, non_blocking);
  dtype = dt;
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool has_bias) : in_features(in), out_features(out) {
  // Exactly torch::nn::LinearImpl::reset(): models built from a seed are the same as with torch::nn::Linear.
  weight = register_parameter("weight", torch::empty({out, in}));
  bias = has_bias ? register_parameter("bias", torch::empty({out})) : register_parameter("bias", {}, false);
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5));
  if (bias.defined()) {
    auto [fan_in, fan_out] = torch::nn::init::_calculate_fan_in_and_fan_out(weight);
    (void)fan_out;
    const auto bound = 1 / std::sqrt(fan_in);
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

at::Tensor LinearImpl::effective_weight() const { return int8 ? int8->dequantize(int8->dtype) : weight; }

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  at::Tensor y;
  if (int8) {
    y = Int8Matmul::apply(x, int8->weight, int8->scale);
    if (bias.defined()) y = y + bias;
  } else {
    y = torch::nn::functional::linear(x, weight_for_input(weight, x), bias);  // bf16-stored frozen weight: cast
  }
  if (!lora_A) return y;
  const auto h = lora_dropout > 0 && is_training() ? torch::dropout(x, lora_dropout, true) : x;
  return y + lora_B(lora_A(h)) * lora_scale;
}

void LinearImpl::add_lora(int64_t rank, double alpha, double dropout) {
  if (rank <= 0) throw std::runtime_error("LoRA rank must be positive, got " + std::to_string(rank));
  if (lora_A) throw std::runtime_error("this Linear already has a LoRA adapter");
  const auto ref = int8 ? int8->scale : weight;
  const auto dtype = int8 ? int8->dtype : weight.scalar_type();
  lora_A = register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(in_features, rank).bias(false)));
  lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(rank, out_features).bias(false)));
  {
    torch::NoGradGuard ng;
    lora_B->weight.zero_();  // PEFT: B = 0, so the adapted layer starts exactly as the base layer
  }
  lora_A->to(ref.device(), dtype);
  lora_B->to(ref.device(), dtype);
  lora_scale = alpha / static_cast<double>(rank);
  lora_dropout = dropout;
}

void LinearImpl::quantize_int8() {
  if (int8) return;
  int8 = register_module("int8", Int8Weight(weight));
  int8->to(weight.device());
  parameters_["weight"] = at::Tensor();  // no float copy kept: that is the memory saved
  weight = at::Tensor();
}

void LinearImpl::merge_lora() {
  if (!lora_A && !int8) return;
  torch::NoGradGuard ng;
  auto w = effective_weight().to(torch::kFloat);
  if (lora_A) w = w + lora_scale * lora_B->weight.to(torch::kFloat).matmul(lora_A->weight.to(torch::kFloat));
  if (int8) {
    const auto dtype = int8->dtype;
    parameters_["weight"] = w.to(dtype).contiguous().set_requires_grad(false);
    weight = parameters_["weight"];
    unregister_module("int8");
    int8 = nullptr;
  } else {
    weight.copy_(w.to(weight.scalar_type()));
  }
  if (lora_A) {
    unregister_module("lora_A");
    unregister_module("lora_B");
    lora_A = nullptr, lora_B = nullptr;
    lora_scale = 0, lora_dropout = 0;
  }
}

std::vector<std::pair<std::string, LinearImpl*>> named_linears(torch::nn::Module& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (auto& item : model.named_modules("", /*include_self=*/false))
    if (auto* l = dynamic_cast<LinearImpl*>(item.value().get())) out.emplace_back(item.key(), l);
  return out;
}

std::vector<std::string> attach_lora(torch::nn::Module& model, const LoraOptions& opt) {
  if (opt.rank <= 0) throw std::runtime_error("lora.rank must be positive to attach adapters");
  if (opt.targets.empty()) throw std::runtime_error("lora.targets: empty (list regexes of Linear names)");
  std::vector<std::regex> res;
  for (auto& t : opt.targets) {
    try {
      res.emplace_back(t);
    } catch (const std::regex_error& e) {
      throw std::runtime_error("lora.targets pattern '" + t + "' is not a valid regex: " + e.what());
    }
  }
  auto linears = named_linears(model);
  std::vector<bool> used(res.size(), false);
  std::vector<LinearImpl*> chosen;
  std::vector<std::string> names;
  for (auto& [name, l] : linears) {
    bool on = false;
    for (size_t i = 0; i < res.size(); ++i)
      if (std::regex_search(name, res[i])) on = true, used[i] = true;
    if (on) chosen.push_back(l), names.push_back(name);
  }
  // Check every pattern before touching the model: an error leaves it as it was.
  for (size_t i = 0; i < res.size(); ++i) {
    if (used[i]) continue;
    std::string examples;
    for (size_t k = 0; k < linears.size() && k < 4; ++k) examples += (k ? ", " : "") + linears[k * linears.size() / 4].first;
    throw std::runtime_error("lora.targets pattern '" + opt.targets[i] + "' matches no Linear (names look like: " +
                             examples + ")");
  }
  for (auto* l : chosen) {
    l->add_lora(opt.rank, opt.alpha, opt.dropout);
    if (opt.base_int8) l->quantize_int8();
  }
  return names;
}

int64_t merge_lora(torch::nn::Module& model) {
  int64_t n = 0;
  for (auto& [name, l] : named_linears(model)) {
    (void)name;
    if (!l->has_lora() && !l->is_int8()) continue;
    n += l->has_lora() ? 1 : 0;
    l->merge_lora();
  }
  return n;
}

std::vector<std::string> lora_linears(torch::nn::Module& model) {
  std::vector<std::string> out;
  for (auto& [name, l] : named_linears(model))
    if (l->has_lora()) out.push_back(name);
  return out;
}

}  // namespace phantom
