// The addon's own errors: one exception type carrying the code JS sees as `error.code`.
// Plain C++ (no Node-API here): how any C++ exception becomes a JS error is errors_js.h.
#pragma once

#include <stdexcept>
#include <string>

namespace bia {

// Codes are the JS `error.code` values. Keep in sync with ts/errors.ts.
enum class ErrorCode {
  OutOfMemory,       // BIA_OUT_OF_MEMORY
  Torch,             // BIA_TORCH_ERROR (a LibTorch error, message without the C++ backtrace)
  InvalidArgument,   // BIA_INVALID_ARGUMENT
  Aborted,           // BIA_ABORTED
  Disposed,          // BIA_DISPOSED
  DeviceUnavailable, // BIA_DEVICE_UNAVAILABLE
  Io,                // BIA_IO_ERROR (a file cannot be opened, read or written)
  Checkpoint,        // BIA_CHECKPOINT_ERROR (not a checkpoint, corrupt, truncated, unsupported)
  CheckpointMismatch,// BIA_CHECKPOINT_MISMATCH (missing / unexpected / mis-shaped tensors for a model)
  Other,             // BIA_NATIVE_ERROR
};

const char* codeName(ErrorCode code);

// The exception type the addon's own code throws.
class BiaError : public std::runtime_error {
 public:
  BiaError(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void invalidArgument(const std::string& message) {
  throw BiaError(ErrorCode::InvalidArgument, message);
}

}  // namespace bia
