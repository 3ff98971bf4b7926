#include "phantom/model/model.h"

#include <set>

namespace phantom {

ProjectorImpl::ProjectorImpl(int64_t in, int64_t out) {
  // Registered as 0, 1, 3 (index 2 is the parameter-free GELU) to match the checkpoints' names.
  ln = register_module("0", torch::nn::LayerNorm(torch::nn::LayerNormOptions({in}).eps(1e-5)));
  fc1 = register_module("1", Linear(in, out));
  fc2 = register_module("3", Linear(out, out));
}

at::Tensor ProjectorImpl::forward(const at::Tensor& x) { return fc2(exact_gelu(fc1(ln(x)))); }

PhantomModelImpl::PhantomModelImpl(const ModelConfig& c) : cfg(c) {
  vision_model = register_module("vision_model", VisionModel(cfg.vision));
  const int64_t r = static_cast<int64_t>(std::lround(1.0 / cfg.downsample_ratio));
  vision_proj = register_module("vision_proj", Projector(cfg.vision.hidden_size * r * r, cfg.llm.hidden_size));
  language_model = register_module("language_model", DecoderLM(cfg.llm, parse_phantom_mode(cfg.phantom), cfg.phantom_eta));
  image_token_index = cfg.image_token_index;
}

int64_t PhantomModelImpl::tokens_per_tile() const {
  const int64_t g = cfg.vision.image_size / cfg.vision.patch_size;
  const auto side = static_cast<int64_t>(g * cfg.downsample_ratio);
  return side * side;
}

at::Tensor PhantomModelImpl::encode_images(const at::Tensor& pixel_values) {
  auto x = vision_model(pixel_values);
  x = x.narrow(1, 1, x.size(1) - 1);  // drop CLS
  const int64_t n = x.size(0), side = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(x.size(1)))));
  TORCH_CHECK(side * side == x.size(1), "vision tokens do not form a square grid: ", x.size(1));
  x = pixel_shuffle(x.reshape({n, side, side, x.size(2)}), cfg.downsample_ratio);
  x = x.reshape({n, -1, x.size(-1)});
  return vision_proj(x);
}

at::Tensor PhantomModelImpl::embed_with_visual(const at::Tensor& input_ids, const at::Tensor& visual) {
  auto emb = language_model->embed(input_ids);
  auto selected = input_ids.eq(image_token_index);
  const int64_t n_placeholders = selected.sum().item<int64_t>();
  const int64_t n_visual = visual.defined() ? visual.size(0) * visual.size(1) : 0;
  if (n_placeholders != n_visual)
    throw std::runtime_error("image token count mismatch: the batch has " + std::to_string(n_placeholders) +
                             " <IMG_CONTEXT> placeholders (id " + std::to_string(image_token_index) + ") but " +
                             std::to_string(n_visual) + " visual tokens (" +
                             std::to_string(visual.defined() ? visual.size(0) : 0) + " tiles x " +
                             std::to_string(tokens_per_tile()) + ")");
  if (n_visual == 0) return emb;
  // Out-of-place so autograd reaches both the text embeddings and the projector.
  auto flat_mask = selected.reshape({-1});
  auto idx = flat_mask.nonzero().squeeze(1);
  auto flat = emb.reshape({-1, emb.size(-1)});
  flat = flat.index_put({idx}, visual.reshape({-1, visual.size(-1)}).to(flat.scalar_type()));
  return flat.view(emb.sizes());
}

at::Tensor PhantomModelImpl::embed_inputs(const at::Tensor& input_ids, const at::Tensor& pixel_values) {
  at::Tensor visual;
  if (pixel_values.defined() && pixel_values.size(0) > 0) visual = encode_images(pixel_values);
  return embed_with_visual(input_ids, visual);
}

at::Tensor PhantomModelImpl::forward_hidden(const ModelInputs& in, KVCache* cache) {
  DecoderInputs d;
  d.embeds = embed_inputs(in.input_ids, in.pixel_values);
  d.attention_mask = in.attention_mask;
  d.positions = in.positions;
  d.sos_index = in.sos_index;
  d.mask = in.mask;
  d.segments = in.segments;
  return language_model->forward_hidden(d, cache);
}

void init_weights(PhantomModelImpl& model, double std) {
  torch::NoGradGuard ng;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    const bool phantom = name.find("_phantom") != std::string::npos;
    auto ends = [&](const char* s) {
      const std::string suf(s);
      return name.size() >= suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
    };
    if (phantom) {
      // The official Phantom modules live inside the LLM, whose _init_weights sets every nn.Linear when the model
      // is built fresh: weights N(0, initializer_range = 0.02), biases zero.
      if (p.dim() == 2) p.normal_(0.0, std);
      else p.zero_();
    } else if (ends("ls1") || ends("ls2")) {
      p.fill_(model.cfg.vision.initializer_factor);
    } else if (name.find("norm") != std::string::npos || name.find("vision_proj.0.") != std::string::npos) {
      if (ends("weight")) p.fill_(1.0);
      else p.zero_();
    } else if (ends("bias")) {
      p.zero_();
    } else {
      p.normal_(0.0, std);
    }
  }
}

std::pair<int64_t, int64_t> count_parameters(torch::nn::Module& m) {
  std::set<const void*> seen;
  int64_t total = 0, trainable = 0;
  for (auto& p : m.parameters()) {
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    total += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  return {total, trainable};
}

}  // namespace phantom
