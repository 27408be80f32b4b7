#include "job.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "addon_data.h"
#include "engine.h"

namespace bia {

namespace {

Napi::Value cancel(const Napi::CallbackInfo& info, const std::shared_ptr<std::atomic<bool>>& flag) {
  flag->store(true);
  return info.Env().Undefined();
}

Napi::Value cancelled(Napi::Env env, const std::shared_ptr<std::atomic<bool>>& flag) { return Napi::Boolean::New(env, flag->load()); }

}  // namespace

std::vector<CancelToken::Property> CancelToken::properties() {
  return {Method<&cancel>("cancel"), Getter<&cancelled>("cancelled")};
}

namespace {

std::atomic<bool> g_shutdown{false};

}  // namespace

bool shuttingDown() { return g_shutdown.load(); }

namespace {

// One dedicated compute thread running jobs in FIFO order.
class Executor {
 public:
  static Executor& instance() {
    static Executor* e = new Executor();  // never destroyed: the thread may outlive static dtors
    return *e;
  }
  void submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_all();
  }
  // Wait until nothing is queued or running (bounded).
  bool waitIdle(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return queue_.empty() && !busy_; });
  }

 private:
  Executor() : thread_([this] { loop(); }) { thread_.detach(); }
  void loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
      }
      task();
      {
        std::lock_guard<std::mutex> lock(mu_);
        busy_ = false;
      }
      cv_.notify_all();
    }
  }
  bool busy_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::thread thread_;
};

// Completion of one job's executor side, shared with its environment cleanup hook.
struct JobState {
  std::shared_ptr<std::atomic<bool>> envStopping;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  void markDone() {
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
    cv.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [this] { return done; });
  }
};

// Runs when a JS environment (e.g. a worker thread) is torn down with this job unfinished.
// Registered after the job's thread-safe function, so it runs before Node destroys that: stop
// every job of that environment, and wait until this one no longer touches its channel.
void onEnvTeardown(void* arg) {
  auto* state = static_cast<JobState*>(arg);
  state->envStopping->store(true);
  state->wait();
}

class Job;
void callJs(Napi::Env env, Napi::Function, Job* job, ProgressEvent* ev);
using Channel = Napi::TypedThreadSafeFunction<Job, ProgressEvent, callJs>;

class Job {
 public:
  Job(Napi::Env env, const char* name, Work work, Napi::Function onProgress,
      std::shared_ptr<std::atomic<bool>> cancelled)
      : deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        cancelled_(cancelled ? std::move(cancelled) : std::make_shared<std::atomic<bool>>(false)) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
    // The channel keeps the event loop alive while the job is queued or running; its finalizer
    // runs on the main thread after every progress event was delivered, and settles the promise.
    channel_ = Channel::New(env, name, 0, 1, this, [](Napi::Env env, void*, Job* job) {
      job->settle(env);
      delete job;
    });
    env_ = env;
    state_->envStopping = AddonData::get(env).stopping;
    napi_add_env_cleanup_hook(env, onEnvTeardown, state_.get());
  }

  std::shared_ptr<JobState> state() const { return state_; }

  Napi::Promise promise() const { return deferred_.Promise(); }

  // On the executor thread.
  void run() {
    syncThreads();
    JobContext::Sender send;
    if (!onProgress_.IsEmpty()) {
      send = [this](const ProgressEvent& ev) { channel_.NonBlockingCall(new ProgressEvent(ev)); };
    }
    JobContext ctx(cancelled_, state_->envStopping, send);
    try {
      ctx.checkAbort();
      finisher_ = work_(ctx);
    } catch (...) {
      failed_ = true;
      error_ = classify(std::current_exception());
    }
    work_ = nullptr;  // drop captured tensors on this thread, before settling
    channel_.Release();
  }

  // On the main thread.
  void progress(Napi::Env env, const ProgressEvent& e) {
    if (onProgress_.IsEmpty() || callbackError_) return;
    Napi::HandleScope scope(env);
    Napi::Object ev = Napi::Object::New(env);
    ev.Set("step", e.step);
    ev.Set("total", e.total);
    ev.Set("stage", e.stage);
    if (!std::isnan(e.value)) ev.Set("value", e.value);
    try {
      onProgress_.Call({ev});
    } catch (const Napi::Error& err) {
      // A throwing progress callback aborts the job and becomes its rejection.
      callbackError_ = std::make_unique<Napi::Reference<Napi::Value>>(Napi::Reference<Napi::Value>::New(err.Value(), 1));
      cancelled_->store(true);
    }
  }

 private:
  void settle(Napi::Env env) {
    napi_remove_env_cleanup_hook(env_, onEnvTeardown, state_.get());
    // During environment teardown settling can fail; nothing may escape a finalizer.
    try {
      settleOrThrow(env);
    } catch (...) {
    }
  }

  void settleOrThrow(Napi::Env env) {
    Napi::HandleScope scope(env);
    if (callbackError_) {
      deferred_.Reject(callbackError_->Value());
    } else if (failed_) {
      deferred_.Reject(toJsError(env, error_).Value());
    } else {
      try {
        deferred_.Resolve(finisher_ ? finisher_(env) : env.Undefined());
      } catch (const Napi::Error& e) {
        deferred_.Reject(e.Value());
      } catch (...) {
        deferred_.Reject(toJsError(env, classify(std::current_exception())).Value());
      }
    }
    finisher_ = nullptr;
  }

  Napi::Promise::Deferred deferred_;
  Channel channel_;
  napi_env env_ = nullptr;
  std::shared_ptr<JobState> state_ = std::make_shared<JobState>();
  Work work_;
  Finisher finisher_;
  bool failed_ = false;
  ErrorInfo error_;
  Napi::FunctionReference onProgress_;
  std::unique_ptr<Napi::Reference<Napi::Value>> callbackError_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
};

void callJs(Napi::Env env, Napi::Function, Job* job, ProgressEvent* ev) {
  std::unique_ptr<ProgressEvent> owned(ev);
  if (env != nullptr && job != nullptr && ev != nullptr) job->progress(env, *ev);
}

}  // namespace

void installShutdownHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    // On process exit (process.exit(), an uncaught exception) stop the running job at its next
    // step before LibTorch's static objects are destroyed.
    std::atexit([] {
      g_shutdown.store(true);
      Executor::instance().waitIdle(std::chrono::seconds(10));
    });
  });
}

Napi::Promise startJob(Napi::Env env, Napi::Value options, const char* name, Work work) {
  Napi::Function onProgress;
  std::shared_ptr<std::atomic<bool>> cancelled;
  if (options.IsObject()) {
    Napi::Object opts = options.As<Napi::Object>();
    Napi::Value p = opts.Get("onProgress");
    if (p.IsFunction()) {
      onProgress = p.As<Napi::Function>();
    } else if (!p.IsUndefined() && !p.IsNull()) {
      invalidArgument("onProgress must be a function");
    }
    Napi::Value c = opts.Get("cancel");
    if (!c.IsUndefined() && !c.IsNull()) cancelled = CancelToken::From(c, "cancel");
  }
  auto* job = new Job(env, name, std::move(work), onProgress, cancelled);
  Napi::Promise promise = job->promise();
  // The channel's finalizer deletes the job; the state outlives it for the cleanup hook.
  Executor::instance().submit([job, state = job->state()] {
    job->run();
    state->markDone();
  });
  return promise;
}

}  // namespace bia
