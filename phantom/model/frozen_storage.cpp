#include "phantom/model/frozen_storage.h"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>

#include <set>

#include "phantom/model/lora.h"

namespace phantom {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Casts a parameter in place (every handle to it, e.g. LinearImpl::weight, sees the new dtype).
void cast_in_place(at::Tensor& p, c10::ScalarType dtype) {
  torch::NoGradGuard ng;
  p.set_data(p.detach().to(dtype));
}

}  // namespace

std::string FrozenStorageReport::summary() const {
  return fmt::format("{} frozen tensors cast, {} frozen Linears as int8; weights {:.1f} MiB -> {:.1f} MiB",
                     tensors_cast, linears_int8, static_cast<double>(bytes_before) / (1 << 20),
                     static_cast<double>(bytes_after) / (1 << 20));
}

int64_t module_bytes(torch::nn::Module& m) {
  std::set<const void*> seen;
  int64_t n = 0;
  for (const auto& list : {m.parameters(), m.buffers()})
    for (auto& t : list)
      if (t.defined() && seen.insert(t.unsafeGetTensorImpl()).second) n += t.numel() * static_cast<int64_t>(t.element_size());
  return n;
}

FrozenStorageReport store_frozen(torch::nn::Module& model, const FrozenStorage& s) {
  FrozenStorageReport r;
  r.bytes_before = module_bytes(model);
  std::set<const void*> done;  // a tied matrix is one tensor
  auto cast = [&](at::Tensor& w) {
    if (!w.defined() || w.requires_grad() || !w.is_floating_point() || w.scalar_type() == s.dtype) return;
    if (!done.insert(w.unsafeGetTensorImpl()).second) return;
    cast_in_place(w, s.dtype);
    ++r.tensors_cast;
  };
  for (auto& [name, l] : named_linears(model)) {
    if (!l->weight.defined() || l->weight.requires_grad()) continue;
    if (s.int8 && !ends_with(name, "lm_head")) {
      l->quantize_int8();
      ++r.linears_int8;
    } else {
      cast(l->weight);
    }
  }
  for (auto& item : model.named_modules("", false))
    if (auto* e = dynamic_cast<torch::nn::EmbeddingImpl*>(item.value().get())) cast(e->weight);
  r.bytes_after = module_bytes(model);
  return r;
}

int64_t restore_master(torch::nn::Module& model, c10::ScalarType master) {
  int64_t n = 0;
  for (auto& [name, l] : named_linears(model)) {
    (void)name;
    if (!l->is_int8() || l->has_lora()) continue;  // with an adapter: merge_lora's job
    l->int8->dtype = master;
    l->merge_lora();  // no adapter: dequantises into a plain `master` weight
    ++n;
  }
  std::set<const void*> seen;
  for (auto& p : model.parameters()) {
    if (!p.defined() || !p.is_floating_point() || p.scalar_type() == master) continue;
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    const bool grad = p.requires_grad();
    cast_in_place(p, master);
    p.set_requires_grad(grad);
    ++n;
  }
  return n;
}

at::Tensor weight_for_input(const at::Tensor& w, const at::Tensor& x) {
  if (w.scalar_type() == x.scalar_type() || !x.is_floating_point()) return w;
  if (at::autocast::is_autocast_enabled(x.device().type())) return w;
  return w.to(x.scalar_type());
}

}  // namespace phantom
