// The Tensor handle: a JS object that owns one at::Tensor.
// Released by dispose() (idempotent) or, as a backstop, by the GC finalizer; its bytes are
// reported to V8 as external memory so that forgotten tensors create GC pressure.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

#include <atomic>
#include <vector>

#include "handle.h"
#include "job.h"

namespace bia {

class TensorHandle : public Handle<TensorHandle, at::Tensor> {
 public:
  static constexpr HandleNames kNames{"Tensor", "a Tensor", "tensor",
                                      "Tensor handles are made by the library (tensor(), zeros(), ...), not with new", true};
  static std::vector<Property> properties();
  static int64_t live() { return live_.load(); }

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;
  // dispose(): the tensor, and its bytes reported to V8.
  void release();

 private:
  int64_t reported_ = 0;
  napi_env env_ = nullptr;
  static std::atomic<int64_t> live_;
};

// The finisher of a job whose result is one tensor: a new Tensor handle owning it.
Finisher tensorResult(at::Tensor t);

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
