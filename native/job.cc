#include "job.h"

#include <cmath>

#include "addon_data.h"
#include "engine.h"

namespace bia {

Napi::Function CancelToken::Init(Napi::Env env) {
  return DefineClass(env, "CancelToken",
                     {InstanceMethod<&CancelToken::Cancel>("cancel"),
                      InstanceAccessor<&CancelToken::Cancelled>("cancelled")});
}

CancelToken::CancelToken(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelToken>(info) {}

Napi::Value CancelToken::Cancel(const Napi::CallbackInfo& info) {
  flag_->store(true);
  return info.Env().Undefined();
}

Napi::Value CancelToken::Cancelled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), flag_->load());
}

namespace {

class Job : public Napi::AsyncProgressQueueWorker<ProgressEvent> {
 public:
  Job(Napi::Env env, const char* name, Work work, Napi::Function onProgress,
      std::shared_ptr<std::atomic<bool>> cancelled)
      : Napi::AsyncProgressQueueWorker<ProgressEvent>(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        cancelled_(cancelled ? std::move(cancelled) : std::make_shared<std::atomic<bool>>(false)) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    // libuv worker threads do not see a thread count set later on the main thread.
    syncThreads();
    JobContext::Sender send;
    if (!onProgress_.IsEmpty()) send = [&progress](const ProgressEvent& ev) { progress.Send(&ev, 1); };
    JobContext ctx(cancelled_, send);
    try {
      ctx.checkAbort();
      finisher_ = work_(ctx);
    } catch (...) {
      error_ = classify(std::current_exception());
      SetError(error_.message);
    }
  }

  void OnProgress(const ProgressEvent* events, size_t count) override {
    if (onProgress_.IsEmpty() || callbackError_) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < count; i++) {
      Napi::Object ev = Napi::Object::New(env);
      ev.Set("step", events[i].step);
      ev.Set("total", events[i].total);
      ev.Set("stage", events[i].stage);
      if (!std::isnan(events[i].value)) ev.Set("value", events[i].value);
      try {
        onProgress_.Call({ev});
      } catch (const Napi::Error& e) {
        // A throwing progress callback aborts the job and becomes its rejection.
        callbackError_ = std::make_unique<Napi::Reference<Napi::Value>>(Napi::Reference<Napi::Value>::New(e.Value(), 1));
        cancelled_->store(true);
        return;
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (callbackError_) {
      deferred_.Reject(callbackError_->Value());
      return;
    }
    try {
      deferred_.Resolve(finisher_ ? finisher_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(toJsError(env, classify(std::current_exception())).Value());
    }
  }

  void OnError(const Napi::Error& /*unused*/) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (callbackError_) {
      deferred_.Reject(callbackError_->Value());
      return;
    }
    deferred_.Reject(toJsError(env, error_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Finisher finisher_;
  ErrorInfo error_;
  Napi::FunctionReference onProgress_;
  std::unique_ptr<Napi::Reference<Napi::Value>> callbackError_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
};

}  // namespace

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
    if (c.IsObject() && c.As<Napi::Object>().InstanceOf(AddonData::get(env).cancelTokenCtor.Value())) {
      cancelled = CancelToken::Unwrap(c.As<Napi::Object>())->flag();
    } else if (!c.IsUndefined() && !c.IsNull()) {
      invalidArgument("cancel must be a CancelToken");
    }
  }
  auto* job = new Job(env, name, std::move(work), onProgress, cancelled);
  Napi::Promise promise = job->promise();
  job->Queue();  // the worker deletes itself after OnOK/OnError
  return promise;
}

}  // namespace bia
