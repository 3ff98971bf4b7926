#include "phantom/model/checkpointing.h"

#include "phantom/model/runtime.h"

namespace phantom {

namespace {

struct BlockFn : torch::CustomClassHolder {
  std::function<at::Tensor(const at::Tensor&)> fn;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, c10::intrusive_ptr<BlockFn> fn) {
    ctx->save_for_backward({x});
    ctx->saved_data["fn"] = c10::IValue::make_capsule(c10::intrusive_ptr<torch::CustomClassHolder>(fn));
    torch::NoGradGuard ng;
    return fn->fn(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto holder = c10::static_intrusive_pointer_cast<BlockFn>(ctx->saved_data["fn"].toCapsule());
    at::Tensor y;
    {
      torch::AutoGradMode enable(true);
      y = holder->fn(x);
    }
    torch::autograd::backward({y}, {grad_out[0]});
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

at::Tensor checkpointed(const at::Tensor& x, std::function<at::Tensor(const at::Tensor&)> block) {
  auto holder = c10::make_intrusive<BlockFn>();
  holder->fn = [block = std::move(block), ac = AutocastState::current()](const at::Tensor& h) {
    AutocastScope scope(ac);
    return block(h);
  };
  const at::Tensor in = x.requires_grad() ? x : x.detach().requires_grad_(true);
  return CheckpointFunction::apply(in, holder);
}

bool wants_checkpoint(const torch::nn::Module& block, const at::Tensor& x) {
  if (!block.is_training() || !torch::GradMode::is_enabled()) return false;
  if (x.requires_grad()) return true;
  for (const auto& p : block.parameters())
    if (p.requires_grad()) return true;
  return false;
}

}  // namespace phantom
