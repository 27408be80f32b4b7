// torch.save's zip format (torch >= 1.6): data.pkl unpickled with torch_objects.h's hooks, each
// storage read once from its data/<key> record.
#pragma once

#include <string>

#include "checkpoint.h"
#include "checkpoint_io.h"

namespace bia::ckpt {

Checkpoint readTorchZip(const std::string& path, const File& file, const CheckpointProgress& progress);

}  // namespace bia::ckpt
