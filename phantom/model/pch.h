// Precompiled header shared by every torch translation unit (see CMakeLists.txt): <torch/torch.h> alone costs
// 15-30 s to parse; parsed once here, each TU then pays about a second.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "phantom/util/logf.h"

#include <string>
#include <vector>
