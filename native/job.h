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
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "errors.h"

namespace bia {

// True once the process is exiting: every job stops at its next step.
bool shuttingDown();
// Called once from the addon's Init: stop jobs cleanly on process exit.
void installShutdownHandler();

struct ProgressEvent {
  double step = 0;
  double total = 0;
  std::string stage;
  double value = 0;  // an optional number (a loss, a rate); NaN when absent
};

// What the work function sees on its thread.
class JobContext {
 public:
  using Sender = std::function<void(const ProgressEvent&)>;
  JobContext(std::shared_ptr<std::atomic<bool>> cancelled, std::shared_ptr<std::atomic<bool>> envStopping, Sender send)
      : cancelled_(std::move(cancelled)), envStopping_(std::move(envStopping)), send_(std::move(send)) {}
  bool cancelled() const {
    return (cancelled_ && cancelled_->load()) || (envStopping_ && envStopping_->load()) || shuttingDown();
  }
  // Throws BIA_ABORTED if the AbortSignal fired. Call between steps.
  void checkAbort() const {
    if (cancelled()) throw BiaError(ErrorCode::Aborted, "the operation was aborted");
  }
  void progress(double step, double total, const std::string& stage, double value = std::nan("")) const {
    if (send_) send_(ProgressEvent{step, total, stage, value});
  }

 private:
  std::shared_ptr<std::atomic<bool>> cancelled_;
  std::shared_ptr<std::atomic<bool>> envStopping_;  // this JS environment is being torn down
  Sender send_;
};

// The work returns a finisher that converts its result to JS on the main thread.
using Finisher = std::function<Napi::Value(Napi::Env)>;
using Work = std::function<Finisher(JobContext&)>;

// JS: new CancelToken(); token.cancel(); token.cancelled
class CancelToken : public Napi::ObjectWrap<CancelToken> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit CancelToken(const Napi::CallbackInfo& info);
  std::shared_ptr<std::atomic<bool>> flag() const { return flag_; }

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Cancelled(const Napi::CallbackInfo& info);
  std::shared_ptr<std::atomic<bool>> flag_ = std::make_shared<std::atomic<bool>>(false);
};

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

// Start a job. `options` may be undefined or {onProgress?: (ev) => void, cancel?: CancelToken}.
Napi::Promise startJob(Napi::Env env, Napi::Value options, const char* name, Work work);

}  // namespace bia
