// `fusionflow train` (train.cpp). Torch-free declaration.
#pragma once

#include "learned/engine.hpp"

namespace fusionflow::learned {
int run_training(const TrainRequest& request);
}
