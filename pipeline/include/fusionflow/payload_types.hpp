// Stable names of the payload types the SDK defines. Plugins may declare
// more with FUSIONFLOW_PAYLOAD_TYPE and PluginRegistrar::add_payload_type.
#pragma once

#include "fusionflow/payload.hpp"
#include "fusionflow/table.hpp"
#include "fusionflow/volume.hpp"

FUSIONFLOW_PAYLOAD_TYPE(fusionflow::Volume, "Volume");
FUSIONFLOW_PAYLOAD_TYPE(fusionflow::Table, "Table");
