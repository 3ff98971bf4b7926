// What a stage's loss is: its kind (an enum, parsed once with the config) and its parameters. Torch-free, so the
// config (run_config.h) and the losses (losses.h) share it. The equations: docs/training.md, docs/paper.md.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "phantom/util/config.h"

namespace phantom::recipe {

enum class LossKind { sft, po, simpo, dpo, ipo, orpo };

// The config spelling of each kind ("sft", "po", ...), in declaration order.
const std::vector<std::string>& loss_kind_names();
const std::string& loss_kind_name(LossKind k);
// Throws config::ConfigError naming `key` and the choices for an unknown name.
LossKind parse_loss_kind(const std::string& name, const std::string& key = "loss");

inline bool needs_preference_data(LossKind k) { return k != LossKind::sft; }
inline bool needs_reference(LossKind k) { return k == LossKind::dpo || k == LossKind::ipo; }

// Defaults of the preference losses, one home for both the config (PreferenceConfig) and LossConfig.
inline constexpr double kDefaultBeta = 2.0;         // the Phantom paper's β (SimPO's temperature)
inline constexpr double kDefaultGamma = 0.5;        // the Phantom paper's γ (SimPO's target margin)
inline constexpr double kDefaultOrpoLambda = 0.1;   // ORPO's λ (Hong et al. 2024; TRL's ORPOConfig.beta)

struct LossConfig {
  LossKind kind = LossKind::sft;
  double beta = kDefaultBeta;     // reward temperature of po / simpo / dpo / ipo (and of ORPO's reported rewards)
  double gamma = kDefaultGamma;   // target margin of po / simpo
  double sft_weight = 1.0;        // weight of the chosen-answer cross-entropy in po / orpo (sft is never weighted)
  double orpo_lambda = kDefaultOrpoLambda;  // weight of ORPO's odds-ratio term
};

// The loss as a sum of its two terms: sft * CE_sum / tokens + pref * preference_sum / questions. compute_loss
// builds the loss with these weights; validation rebuilds the loss of a whole held-out set from its sums with them.
struct LossWeights {
  double sft = 0, pref = 0;
};
LossWeights loss_weights(const LossConfig& c);
// The loss of the data whose LossOut::sums were summed into `sums` ("sft", "tokens", "pref", "questions"), as if
// it were one batch: what validation reports as val/loss.
double loss_from_sums(const LossConfig& c, const std::map<std::string, double>& sums);

// Config hooks (found by argument-dependent lookup from phantom/util/config.h's visitors): a stage's `loss` is
// read as its name, checked against the choices (the error names the key and lists them), and written back as it.
void read_scalar(const YAML::Node& n, LossKind& out, const std::string& key, const config::Source& src);
YAML::Emitter& operator<<(YAML::Emitter& out, LossKind k);
std::ostream& operator<<(std::ostream& out, LossKind k);

}  // namespace phantom::recipe
