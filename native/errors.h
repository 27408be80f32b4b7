// One C++ -> JS error mapping for the whole addon.
// Every exception that can leave C++ goes through classify(); nothing thrown in C++ may
// terminate the process.
#pragma once
#include <napi.h>

#include <exception>
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

struct ErrorInfo {
  ErrorCode code = ErrorCode::Other;
  std::string message;
  std::string origin;  // which C++ exception type it came from
};

// Map any in-flight exception to a code and a clean message.
ErrorInfo classify(std::exception_ptr ep);

// Build the JS Error object (with .code, .origin; name AbortError for aborts).
Napi::Error toJsError(Napi::Env env, const ErrorInfo& info);

// Run f; any exception (other than an already-built Napi::Error) becomes a JS error with a code.
template <typename F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw toJsError(env, classify(std::current_exception()));
  }
}

}  // namespace bia
