#include "tensor_js.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstring>
#include <limits>

#include "device.h"
#include "errors.h"
#include "job.h"

namespace bia {

std::atomic<int64_t> TensorHandle::live_{0};

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Handle(info) {
  env_ = info.Env();
  reported_ = static_cast<int64_t>(state().nbytes());
  if (reported_ > 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), reported_);
  live_++;
}

TensorHandle::~TensorHandle() { release(); }

void TensorHandle::release() {
  if (!alive()) return;
  Handle::release();
  if (reported_ > 0 && env_ != nullptr) {
    int64_t ignored = 0;
    napi_adjust_external_memory(env_, -reported_, &ignored);
  }
  reported_ = 0;
  live_--;
}

Finisher tensorResult(at::Tensor t) {
  return [t = std::move(t)](Napi::Env env) -> Napi::Value { return TensorHandle::Wrap(env, t); };
}

namespace {

Napi::Value shape(Napi::Env env, const at::Tensor& t) {
  Napi::Array arr = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  return arr;
}

Napi::Value dtype(Napi::Env env, const at::Tensor& t) { return Napi::String::New(env, dtypeName(t.scalar_type())); }
Napi::Value device(Napi::Env env, const at::Tensor& t) { return Napi::String::New(env, deviceName(t.device())); }
Napi::Value nbytes(Napi::Env env, const at::Tensor& t) { return Napi::Number::New(env, static_cast<double>(t.nbytes())); }

Napi::Value read(const Napi::CallbackInfo& info, const at::Tensor& tensor) {
  return startJob(info.Env(), info[0], "bia.tensor.read", [t = tensor](JobContext&) -> Finisher {
    at::Tensor r = readable(t);
    return [r](Napi::Env env) { return toTypedArray(env, r); };
  });
}

Napi::Value itemsSync(const Napi::CallbackInfo& info, const at::Tensor& t) {
  if (t.numel() > 4096) invalidArgument("itemsSync() is for small tensors (<= 4096 elements); use read()");
  return toTypedArray(info.Env(), readable(t));
}

Napi::Value to(const Napi::CallbackInfo& info, const at::Tensor& t) {
  c10::ScalarType dtype = info[0].IsString() ? parseDtype(info[0].As<Napi::String>()) : t.scalar_type();
  c10::Device device = info[1].IsString() ? parseDevice(info[1].As<Napi::String>()) : t.device();
  return startJob(info.Env(), info[2], "bia.tensor.to", [t, dtype, device](JobContext&) -> Finisher {
    at::Tensor r = t.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
    synchronize(device);
    return tensorResult(r);
  });
}

}  // namespace

std::vector<TensorHandle::Property> TensorHandle::properties() {
  return {Getter<&shape>("shape"), Getter<&dtype>("dtype"), Getter<&device>("device"), Getter<&nbytes>("nbytes"), DisposedAccessor(),
          DisposeMethod(), AsyncMethod<&read>("read"), AsyncMethod<&to>("to"), Method<&itemsSync>("itemsSync")};
}

at::Tensor readable(const at::Tensor& t) {
  at::Tensor r = t.detach().to(at::kCPU);
  const auto st = r.scalar_type();
  if (st == at::kHalf || st == at::kBFloat16) r = r.to(at::kFloat);
  if (st == at::kBool) r = r.to(at::kByte);
  if (st == at::kLong) r = r.to(at::kDouble);  // exact up to 2^53; JS has no int64 typed array of numbers
  return r.contiguous();
}

Napi::Value toTypedArray(Napi::Env env, const at::Tensor& t) {
  const size_t n = static_cast<size_t>(t.numel());
  const size_t bytes = t.nbytes();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes > 0) std::memcpy(buf.Data(), t.data_ptr(), bytes);
  switch (t.scalar_type()) {
    case at::kFloat: return Napi::Float32Array::New(env, n, buf, 0);
    case at::kDouble: return Napi::Float64Array::New(env, n, buf, 0);
    case at::kByte: return Napi::Uint8Array::New(env, n, buf, 0);
    case at::kInt: return Napi::Int32Array::New(env, n, buf, 0);
    default: invalidArgument("cannot read a tensor of dtype " + dtypeName(t.scalar_type()));
  }
}

std::vector<int64_t> parseShape(Napi::Value value) {
  if (!value.IsArray()) invalidArgument("shape must be an array of non-negative integers");
  Napi::Array arr = value.As<Napi::Array>();
  if (arr.Length() > 16) invalidArgument("shape has more than 16 dimensions");
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsNumber()) invalidArgument("shape must be an array of non-negative integers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d)) || d > 9.0e15) {
      invalidArgument("shape[" + std::to_string(i) + "] must be a non-negative integer, got " + std::to_string(d));
    }
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

namespace {

int64_t numelOf(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) {
    if (s != 0 && n > std::numeric_limits<int64_t>::max() / s) invalidArgument("shape is too large");
    n *= s;
  }
  return n;
}

// Copy a JS typed array into a CPU tensor of the given shape (on the calling thread).
at::Tensor copyFromTypedArray(Napi::Value data, const std::vector<int64_t>& shape) {
  if (!data.IsTypedArray()) invalidArgument("data must be a Float32Array, Float64Array or Uint8Array");
  Napi::TypedArray ta = data.As<Napi::TypedArray>();
  c10::ScalarType st;
  switch (ta.TypedArrayType()) {
    case napi_float32_array: st = at::kFloat; break;
    case napi_float64_array: st = at::kDouble; break;
    case napi_uint8_array: st = at::kByte; break;
    case napi_int32_array: st = at::kInt; break;
    default: invalidArgument("data must be a Float32Array, Float64Array, Uint8Array or Int32Array");
  }
  const int64_t n = numelOf(shape);
  if (static_cast<int64_t>(ta.ElementLength()) != n) {
    invalidArgument("data has " + std::to_string(ta.ElementLength()) + " elements but shape needs " + std::to_string(n));
  }
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(st));
  if (t.nbytes() > 0) {
    const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    std::memcpy(t.data_ptr(), src, t.nbytes());
  }
  return t;
}

// Where a new tensor goes: its dtype (unset: a default) and device.
struct TargetOptions {
  c10::optional<c10::ScalarType> dtype;
  c10::Device device{c10::kCPU};
};

TargetOptions parseTarget(const Napi::CallbackInfo& info, size_t dtypeArg, size_t deviceArg) {
  TargetOptions o;
  if (info.Length() > dtypeArg && info[dtypeArg].IsString()) o.dtype = parseDtype(info[dtypeArg].As<Napi::String>());
  if (info.Length() > deviceArg && info[deviceArg].IsString()) o.device = parseDevice(info[deviceArg].As<Napi::String>());
  return o;
}

// t in the target's dtype (`fallback` when unset) on its device.
at::Tensor toTarget(const at::Tensor& t, const TargetOptions& o, c10::ScalarType fallback) {
  at::Tensor r = t.to(o.device, o.dtype.value_or(fallback));
  synchronize(o.device);
  return r;
}

// The (shape, dtype, device) arguments of zeros() and randn().
std::pair<std::vector<int64_t>, TargetOptions> parseFactory(const Napi::CallbackInfo& info) {
  auto shape = parseShape(info[0]);
  numelOf(shape);
  return {shape, parseTarget(info, 1, 2)};
}

}  // namespace

Napi::Value TensorFromArray(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto shape = parseShape(info[1]);
    TargetOptions o = parseTarget(info, 2, 3);
    at::Tensor t = copyFromTypedArray(info[0], shape);
    return TensorHandle::Wrap(info.Env(), toTarget(t, o, t.scalar_type()));
  });
}

Napi::Value TensorFromArrayAsync(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto shape = parseShape(info[1]);
    TargetOptions o = parseTarget(info, 2, 3);
    // One memcpy on the main thread (the JS buffer may change after we return); the dtype and
    // device conversion happens on the worker.
    at::Tensor t = copyFromTypedArray(info[0], shape);
    return startJob(info.Env(), info[4], "bia.tensor.create", [t, o](JobContext&) -> Finisher {
      return tensorResult(toTarget(t, o, t.scalar_type()));
    });
  });
}

Napi::Value Zeros(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto [shape, o] = parseFactory(info);
    return startJob(info.Env(), info[3], "bia.tensor.zeros", [shape = shape, o = o](JobContext&) -> Finisher {
      return tensorResult(toTarget(at::zeros(shape, at::TensorOptions().dtype(o.dtype.value_or(at::kFloat)).device(o.device)), o, at::kFloat));
    });
  });
}

Napi::Value Randn(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto [shape, o] = parseFactory(info);
    if (!info[3].IsNumber()) invalidArgument("seed must be a number");
    const double seed = info[3].As<Napi::Number>().DoubleValue();
    if (!(seed >= 0) || seed > 9.0e15 || seed != static_cast<double>(static_cast<uint64_t>(seed))) {
      invalidArgument("seed must be a non-negative integer");
    }
    return startJob(info.Env(), info[4], "bia.tensor.randn", [shape = shape, o = o, seed](JobContext&) -> Finisher {
      // Drawn on the CPU with a private generator: the same seed gives the same numbers on every device.
      auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
      return tensorResult(toTarget(at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)), o, at::kFloat));
    });
  });
}

Napi::Value ExternalMemory(const Napi::CallbackInfo& info) {
  int64_t total = 0;
  napi_adjust_external_memory(info.Env(), 0, &total);
  return Napi::Number::New(info.Env(), static_cast<double>(total));
}

Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(TensorHandle::live()));
}

}  // namespace bia
