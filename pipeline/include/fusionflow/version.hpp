#pragma once

namespace fusionflow {
// The fusionflow release, e.g. "0.1.0".
const char* version_string();
}  // namespace fusionflow
