#include "trainers/recipe/loss_config.h"

#include <algorithm>
#include <ostream>

namespace phantom::recipe {

const std::vector<std::string>& loss_kind_names() {
  static const std::vector<std::string> names = {"sft", "po", "simpo", "dpo", "ipo", "orpo"};
  return names;
}

const std::string& loss_kind_name(LossKind k) { return loss_kind_names().at(static_cast<size_t>(k)); }

LossKind parse_loss_kind(const std::string& name, const std::string& key) {
  const auto& names = loss_kind_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<LossKind>(i);
  std::string msg = "config error: " + key + ": expected " + config::Check::one_of(names).describe() + ", got '" +
                    name + "'";
  if (const std::string best = config::closest(name, names); !best.empty()) msg += "; did you mean '" + best + "'?";
  throw config::ConfigError(msg);
}

LossWeights loss_weights(const LossConfig& c) {
  switch (c.kind) {
    // An sft stage on triples is plain SFT of the chosen answers: the same loss as on conversations, unweighted.
    case LossKind::sft: return {1.0, 0.0};
    case LossKind::po: return {c.sft_weight, 1.0};
    case LossKind::orpo: return {c.sft_weight, c.orpo_lambda};
    case LossKind::simpo:
    case LossKind::dpo:
    case LossKind::ipo: return {0.0, 1.0};
  }
  return {};
}

double loss_from_sums(const LossConfig& c, const std::map<std::string, double>& sums) {
  auto get = [&](const char* k) {
    auto it = sums.find(k);
    return it == sums.end() ? 0.0 : it->second;
  };
  const LossWeights w = loss_weights(c);
  double loss = 0;  // the counts floored at 1, as compute_loss divides
  if (w.sft != 0) loss += w.sft * get("sft") / std::max(1.0, get("tokens"));
  if (w.pref != 0) loss += w.pref * get("pref") / std::max(1.0, get("questions"));
  return loss;
}

void read_scalar(const YAML::Node& n, LossKind& out, const std::string& key, const config::Source& src) {
  std::string name;
  config::read_scalar(n, name, key, src);
  config::check_value(name, config::Check::one_of(loss_kind_names()), key, n, src);  // names the file and line
  out = parse_loss_kind(name, key);
}

YAML::Emitter& operator<<(YAML::Emitter& out, LossKind k) { return out << loss_kind_name(k); }
std::ostream& operator<<(std::ostream& out, LossKind k) { return out << loss_kind_name(k); }

}  // namespace phantom::recipe
