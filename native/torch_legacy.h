// torch.save's legacy format (torch < 1.6, or _use_new_zipfile_serialization=False): a magic number,
// a protocol version and sys_info pickled in a row, then the object pickle (torch_objects.h's
// hooks), the storage key list, and each storage's element count and bytes.
#pragma once

#include <string>

#include "checkpoint.h"
#include "checkpoint_io.h"

namespace bia::ckpt {

Checkpoint readTorchLegacy(const std::string& path, const File& file, const CheckpointProgress& progress);

}  // namespace bia::ckpt
