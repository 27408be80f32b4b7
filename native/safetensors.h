// safetensors: an 8-byte header length, a JSON
// header (dtype, shape and data offsets of each tensor, and __metadata__), then the tensors' bytes.
// Read here with every offset checked against the file; written by writeSafetensors (checkpoint.h).
#pragma once

#include <string>

#include "checkpoint.h"
#include "checkpoint_io.h"

namespace bia::ckpt {

Checkpoint readSafetensors(const std::string& path, const File& file, const CheckpointProgress& progress);

}  // namespace bia::ckpt
