#include "engine_js.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <string>
#include <vector>

#include "engine.h"
#include "unet.h"

#include "allocator.h"
#include "args.h"
#include "device.h"
#include "errors.h"
#include "group_norm.h"
#include "job.h"
#include "profile.h"
#include "tensor_js.h"

namespace bia {

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("torchVersion", std::string(TORCH_VERSION));
    o.Set("buildConfig", at::show_config());
    o.Set("parallelInfo", at::get_parallel_info());
    o.Set("cxx11Abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI != 0));
    o.Set("threads", at::get_num_threads());
    o.Set("interopThreads", at::get_num_interop_threads());
    o.Set("hasMKL", at::hasMKL());
    o.Set("hasMKLDNN", at::hasMKLDNN());
    o.Set("hasOpenMP", at::hasOpenMP());
    BlasInfo b = detectBlas();
    Napi::Object blas = Napi::Object::New(env);
    blas.Set("name", b.name);
    blas.Set("library", b.library);
    blas.Set("config", b.config);
    if (b.threads > 0) blas.Set("threads", b.threads);
    o.Set("blas", blas);
    Napi::Object cuda = Napi::Object::New(env);
    cuda.Set("built", cudaBuilt());
    cuda.Set("available", torch::cuda::is_available());
    cuda.Set("cudnn", torch::cuda::is_available() && torch::cuda::cudnn_is_available());
    Napi::Array devices = Napi::Array::New(env);
    for (const auto& d : cudaDevices()) {
      Napi::Object dev = Napi::Object::New(env);
      dev.Set("index", d.index);
      dev.Set("name", d.name);
      dev.Set("totalMemory", static_cast<double>(d.totalMemory));
      devices.Set(devices.Length(), dev);
    }
    cuda.Set("devices", devices);
    o.Set("cuda", cuda);
    CpuCacheStats cs = cpuCacheStats();
    Napi::Object cache = Napi::Object::New(env);
    cache.Set("enabled", cs.enabled);
    cache.Set("limitBytes", static_cast<double>(cs.limitBytes));
    cache.Set("cachedBytes", static_cast<double>(cs.cachedBytes));
    cache.Set("liveBytes", static_cast<double>(cs.liveBytes));
    cache.Set("hits", static_cast<double>(cs.hits));
    cache.Set("misses", static_cast<double>(cs.misses));
    cache.Set("mallocTuned", cs.mallocTuned);
    o.Set("cpuCache", cache);
    return o;
  });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsNumber()) invalidArgument("threads must be a positive integer");
    double d = info[0].As<Napi::Number>().DoubleValue();
    if (!(d >= 1) || d > 1024 || d != static_cast<double>(static_cast<int>(d))) invalidArgument("threads must be an integer in [1, 1024]");
    return Napi::Number::New(info.Env(), setThreads(static_cast<int>(d)));
  });
}

// A timed loop of one operation. Also the reference "long job": it reports progress after every
// iteration and stops at the next iteration when aborted.
Napi::Value Benchmark(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsObject()) invalidArgument("benchmark options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    BenchmarkSpec s;
    s.op = optString(o, "op", "sgemm");
    s.device = parseDevice(optString(o, "device", "cpu"));
    s.dtype = parseDtype(optString(o, "dtype", "float32"));
    s.warmup = optInt(o, "warmup", 2, 0, 1000);
    s.iterations = optInt(o, "iterations", 5, 1, 1000000);
    s.channelsLast = o.Get("channelsLast").ToBoolean();
    if (s.op == "sgemm") {
      s.m = optInt(o, "m", 1024, 1, 1 << 16);
      s.n = optInt(o, "n", s.m, 1, 1 << 16);
      s.k = optInt(o, "k", s.m, 1, 1 << 16);
    } else if (s.op == "conv2d") {
      s.batch = optInt(o, "batch", 1, 1, 4096);
      s.cin = optInt(o, "inChannels", 128, 1, 65536);
      s.cout = optInt(o, "outChannels", s.cin, 1, 65536);
      s.h = optInt(o, "height", 64, 1, 65536);
      s.w = optInt(o, "width", s.h, 1, 65536);
      s.kernel = optInt(o, "kernel", 3, 1, 31);
      if (s.kernel % 2 == 0) invalidArgument("kernel must be odd");
    } else {
      invalidArgument("op must be 'sgemm' or 'conv2d', got '" + s.op + "'");
    }
    return startJob(info.Env(), info[1], "bia.benchmark", [s](JobContext& ctx) -> Finisher {
      const BenchmarkResult b = runBenchmark(s, ctx);
      return [b](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        Napi::Array t = Napi::Array::New(env, b.seconds.size());
        for (size_t i = 0; i < b.seconds.size(); i++) t.Set(static_cast<uint32_t>(i), b.seconds[i]);
        r.Set("seconds", t);
        r.Set("flops", b.flops);
        r.Set("threads", b.threads);
        return r;
      };
    });
  });
}

Napi::Value UNetStats(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const UNetCounters c = unetCounters(info[0].ToBoolean().Value());
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("encodeCalls", static_cast<double>(c.encodeCalls));
    o.Set("decodeCalls", static_cast<double>(c.decodeCalls));
    o.Set("encodeImages", static_cast<double>(c.encodeImages));
    o.Set("decodeImages", static_cast<double>(c.decodeImages));
    o.Set("seconds", c.seconds);
    return o;
  });
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  emptyCpuCache();
  return info.Env().Undefined();
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor a = TensorHandle::From(info[0], "a");
    at::Tensor b = TensorHandle::From(info[1], "b");
    if (a.dim() < 1 || b.dim() < 1) invalidArgument("matmul needs tensors with at least one dimension");
    if (a.size(-1) != b.size(b.dim() == 1 ? 0 : -2)) {
      invalidArgument("matmul shapes do not match: " + c10::str(a.sizes()) + " @ " + c10::str(b.sizes()));
    }
    if (a.device() != b.device()) invalidArgument("matmul operands are on different devices: " + deviceName(a.device()) + " and " + deviceName(b.device()));
    return startJob(info.Env(), info[2], "bia.matmul", [a, b](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor r = at::matmul(a, b);
      synchronize(r.device());
      return tensorResult(r);
    });
  });
}

// groupNorm(x, weight, bias, {groups, eps, silu, channelsLast, reference}, jobOptions): the UNet's
// GroupNorm (+ SiLU) as one op; the fused CPU kernel where it serves, LibTorch's ops otherwise or with
// reference (for comparisons). channelsLast lays x out NHWC first (the result keeps that layout).
Napi::Value GroupNormJs(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor x = TensorHandle::From(info[0], "x");
    at::Tensor w = TensorHandle::From(info[1], "weight");
    at::Tensor b = TensorHandle::From(info[2], "bias");
    Napi::Object o = info[3].As<Napi::Object>();
    const int64_t groups = o.Get("groups").As<Napi::Number>().Int64Value();
    const double eps = o.Get("eps").As<Napi::Number>().DoubleValue();
    const bool silu = o.Get("silu").ToBoolean().Value();
    const bool channelsLast = o.Get("channelsLast").ToBoolean().Value();
    const bool reference = o.Get("reference").ToBoolean().Value();
    if (x.dim() != 4) invalidArgument("groupNorm: x must be [N, C, H, W], got " + c10::str(x.sizes()));
    if (!x.is_floating_point()) invalidArgument("groupNorm: x must be floating point");
    if (groups < 1 || x.size(1) % groups != 0) invalidArgument("groupNorm: " + std::to_string(x.size(1)) + " channels do not split into " + std::to_string(groups) + " groups");
    if (w.dim() != 1 || b.dim() != 1 || w.size(0) != x.size(1) || b.size(0) != x.size(1)) invalidArgument("groupNorm: weight and bias must be [" + std::to_string(x.size(1)) + "]");
    if (w.device() != x.device() || b.device() != x.device()) invalidArgument("groupNorm: x, weight and bias must be on one device");
    if (!(eps >= 0)) invalidArgument("groupNorm: eps must be >= 0");
    return startJob(info.Env(), info[4], "bia.groupNorm", [=](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor xx = channelsLast ? x.contiguous(at::MemoryFormat::ChannelsLast) : x.contiguous();
      at::Tensor r;
      if (!reference && groupNormCpuServes(xx)) {
        r = groupNormCpu(xx, groups, w, b, eps, silu);
      } else {
        r = at::group_norm(xx, groups, w.to(xx.scalar_type()), b.to(xx.scalar_type()), eps);
        if (silu) r = at::silu(r);
      }
      synchronize(r.device());
      return tensorResult(r.contiguous());
    });
  });
}

Napi::Value CudaMemoryStatsJs(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    int device = 0;
    if (!info[0].IsUndefined()) {
      if (!info[0].IsNumber()) invalidArgument("device must be a non-negative integer");
      const double d = info[0].As<Napi::Number>().DoubleValue();
      if (!(d >= 0) || d > 1023 || d != static_cast<double>(static_cast<int>(d))) invalidArgument("device must be an integer in [0, 1023]");
      device = static_cast<int>(d);
    }
    const bool reset = info[1].ToBoolean().Value();
    if (torch::cuda::is_available()) {
      const int count = static_cast<int>(torch::cuda::device_count());
      if (device >= count) {
        throw BiaError(ErrorCode::DeviceUnavailable, "CUDA device " + std::to_string(device) + " requested, but only " + std::to_string(count) + " CUDA device(s) exist");
      }
    }
    const std::optional<CudaMemoryStats> s = cudaMemoryStats(device, reset);
    if (!s) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("allocatedBytes", static_cast<double>(s->allocatedBytes));
    o.Set("peakAllocatedBytes", static_cast<double>(s->peakAllocatedBytes));
    o.Set("reservedBytes", static_cast<double>(s->reservedBytes));
    o.Set("peakReservedBytes", static_cast<double>(s->peakReservedBytes));
    return o;
  });
}

Napi::Value SetCudnnBenchmark(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsBoolean()) invalidArgument("cuDNN benchmark mode must be a boolean");
    return Napi::Boolean::New(info.Env(), setCudnnBenchmark(info[0].As<Napi::Boolean>().Value()));
  });
}

Napi::Value GetCudnnBenchmark(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), cudnnBenchmark());
}

Napi::Value OpProfileStart(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Object o = optObject(info[0], "profile options");
    const bool sync = optBool(o, "sync", false);
    if (!opProfileStart(sync)) invalidArgument("an op profile is already running; stop it first (opProfileStop)");
    return info.Env().Undefined();
  });
}

Napi::Value OpProfileStop(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const std::optional<OpProfile> p = opProfileStop();
    if (!p) invalidArgument("no op profile is running; start one first (opProfileStart)");
    Napi::Array ops = Napi::Array::New(env, p->ops.size());
    for (size_t i = 0; i < p->ops.size(); i++) {
      Napi::Object op = Napi::Object::New(env);
      op.Set("name", p->ops[i].name);
      op.Set("calls", static_cast<double>(p->ops[i].calls));
      op.Set("seconds", p->ops[i].seconds);
      ops.Set(static_cast<uint32_t>(i), op);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("ops", ops);
    o.Set("totalSeconds", p->totalSeconds);
    o.Set("wallSeconds", p->wallSeconds);
    return o;
  });
}

}  // namespace bia
