// One C++ -> JS error mapping for the whole addon.
// Every exception that can leave C++ goes through classify(); nothing thrown in C++ may
// terminate the process.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

#include "errors.h"

namespace bia {

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

// Like guarded(), for functions that return a Promise: a failure before the job starts becomes a
// rejected Promise instead of a synchronous throw, so callers see one failure path.
template <typename F>
Napi::Value guardedPromise(Napi::Env env, F&& f) {
  try {
    return f();
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  } catch (...) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(toJsError(env, classify(std::current_exception())).Value());
    return d.Promise();
  }
}

}  // namespace bia
