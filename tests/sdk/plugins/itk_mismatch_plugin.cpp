// Built "against" an ITK the host does not use.
#define FUSIONFLOW_PLUGIN_ITK_VERSION "4.13.0"
#include <fusionflow/sdk.hpp>

FUSIONFLOW_PLUGIN("old_itk", "1.0.0", "test plugin built against another ITK") { (void)registrar; }
