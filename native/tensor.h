// The Tensor handle: a JS object that owns one at::Tensor.
// Released by dispose() (idempotent) or, as a backstop, by the GC finalizer; its bytes are
// reported to V8 as external memory so that forgotten tensors create GC pressure.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

#include <atomic>

namespace bia {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  // Wrap an at::Tensor in a new JS handle (main thread only).
  static Napi::Object Wrap(Napi::Env env, at::Tensor tensor);
  // The tensor of a JS handle; throws BIA_INVALID_ARGUMENT for non-handles, BIA_DISPOSED after dispose().
  static const at::Tensor& From(Napi::Value value, const char* what = "tensor");
  static int64_t live() { return live_.load(); }

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  const at::Tensor& tensor(const char* what = "tensor") const;

 private:
  void release();
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Nbytes(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);   // async: Promise<TypedArray>
  Napi::Value To(const Napi::CallbackInfo& info);     // async: Promise<handle>
  Napi::Value ItemsSync(const Napi::CallbackInfo& info);  // small tensors only

  at::Tensor tensor_;
  bool alive_ = false;
  int64_t reported_ = 0;
  napi_env env_ = nullptr;
  static std::atomic<int64_t> live_;
};

// Convert a CPU-contiguous tensor into a fresh JS typed array (float16/bfloat16 -> Float32Array,
// bool -> Uint8Array, int64 -> Float64Array).
Napi::Value toTypedArray(Napi::Env env, const at::Tensor& cpuContiguous);
// Prepare a tensor for toTypedArray off the main thread.
at::Tensor readable(const at::Tensor& t);

// Factories exported on the addon.
Napi::Value TensorFromArray(const Napi::CallbackInfo& info);  // (typedArray, shape, dtype?, device?) sync
Napi::Value TensorFromArrayAsync(const Napi::CallbackInfo& info);  // same, Promise, conversion off-thread
Napi::Value Zeros(const Napi::CallbackInfo& info);            // (shape, dtype, device)
Napi::Value Randn(const Napi::CallbackInfo& info);            // (shape, dtype, device, seed)
Napi::Value LiveTensors(const Napi::CallbackInfo& info);
Napi::Value ExternalMemory(const Napi::CallbackInfo& info);  // V8's external-memory total (bytes)
std::vector<int64_t> parseShape(Napi::Value value);

}  // namespace bia
