// The one pattern for long work: a Job runs a C++ function off the main thread and returns a
// Promise. Progress events stream to JS through a thread-safe function (all delivered before
// the Promise settles), and an AbortSignal reaches the C++ loop through a CancelToken that the
// work checks between steps.
//
// Jobs run in submission order on one dedicated compute thread (the executor), not on libuv's
// pool: LibTorch already spreads each operation over every core, and one OpenMP team per pool
// thread made teams spin against each other (conv2d ran 0.7x as fast as Python eager; with one
// thread it runs at parity, see bench/engine). libuv's pool stays free for file I/O.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "errors_js.h"
#include "handle.h"
#include "job_context.h"

namespace bia {

// Called once from the addon's Init: stop jobs cleanly on process exit.
void installShutdownHandler();

// The work returns a finisher that converts its result to JS on the main thread.
using Finisher = std::function<Napi::Value(Napi::Env)>;
using Work = std::function<Finisher(JobContext&)>;

// JS: new CancelToken(); token.cancel(); token.cancelled
class CancelToken : public Handle<CancelToken, std::shared_ptr<std::atomic<bool>>> {
 public:
  static constexpr HandleNames kNames{"CancelToken", "a CancelToken", "cancel token", nullptr, true};
  static std::vector<Property> properties();
  static std::shared_ptr<std::atomic<bool>> create() { return std::make_shared<std::atomic<bool>>(false); }
  using Handle::Handle;
};

// Start a job. `options` may be undefined or {onProgress?: (ev) => void, cancel?: CancelToken}.
Napi::Promise startJob(Napi::Env env, Napi::Value options, const char* name, Work work);

}  // namespace bia
