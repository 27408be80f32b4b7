#include "errors.h"

namespace bia {

const char* codeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::OutOfMemory: return "BIA_OUT_OF_MEMORY";
    case ErrorCode::Torch: return "BIA_TORCH_ERROR";
    case ErrorCode::InvalidArgument: return "BIA_INVALID_ARGUMENT";
    case ErrorCode::Aborted: return "BIA_ABORTED";
    case ErrorCode::Disposed: return "BIA_DISPOSED";
    case ErrorCode::DeviceUnavailable: return "BIA_DEVICE_UNAVAILABLE";
    case ErrorCode::Io: return "BIA_IO_ERROR";
    case ErrorCode::Checkpoint: return "BIA_CHECKPOINT_ERROR";
    case ErrorCode::CheckpointMismatch: return "BIA_CHECKPOINT_MISMATCH";
    case ErrorCode::Other: return "BIA_NATIVE_ERROR";
  }
  return "BIA_NATIVE_ERROR";
}

}  // namespace bia
