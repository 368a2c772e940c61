#include "fusionflow/version.hpp"

namespace fusionflow {
const char* version_string() { return FUSIONFLOW_VERSION; }
}  // namespace fusionflow
