// Checks of a model config before any module is built from it: a zero head count would divide by zero (SIGFPE), a
// negative layer count size a vector; each is a one-line problem here instead. docs/reliability.md.
#pragma once

#include <string>

#include "phantom/model/model_config.h"

namespace phantom {

// "" or one problem in the YAML key names ("llm.num_heads (0) must be in [1, 4096]"): every size in range (the
// bounds are far above every released Phantom/InternVL model), heads dividing widths, an even head dimension,
// patches dividing tiles, the pixel shuffle giving whole cells, positive epsilons.
std::string model_config_problem(const ModelConfig& c);
std::string llm_config_problem(const LlmConfig& c);  // the decoder's part (for a bare LLM)
// Throws config::ConfigError(prefix + problem) (prefix e.g. "config error: model.").
void validate_model_config(const ModelConfig& c, const std::string& prefix);


}  // namespace phantom
