// Everything a plugin author includes.
#pragma once

#include "fusionflow/atomic_file.hpp"
#include "fusionflow/latent.hpp"
#include "fusionflow/choice_list.hpp"
#include "fusionflow/companion_library.hpp"
#include "fusionflow/node.hpp"
#include "fusionflow/node_type.hpp"
#include "fusionflow/param.hpp"
#include "fusionflow/payload.hpp"
#include "fusionflow/payload_types.hpp"
#include "fusionflow/plugin.hpp"
#include "fusionflow/plugin_command.hpp"
#include "fusionflow/run_control.hpp"
#include "fusionflow/statistics.hpp"
#include "fusionflow/table.hpp"
#include "fusionflow/transform.hpp"
#include "fusionflow/volume.hpp"
