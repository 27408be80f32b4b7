// The addon's engine-room functions (engine.h, profile.h): what LibTorch we run on (version,
// BLAS, threads, CUDA), thread control, benchmarks, memory and op profiles.
#pragma once
#include <napi.h>

namespace bia {

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info);   // sync, cheap
Napi::Value SetNumThreads(const Napi::CallbackInfo& info); // (n) intra-op threads (and BLAS threads)
Napi::Value Benchmark(const Napi::CallbackInfo& info);     // ({op,...}, jobOpts) -> Promise<{times,flops}>
Napi::Value Matmul(const Napi::CallbackInfo& info);
Napi::Value GroupNormJs(const Napi::CallbackInfo& info);
// (reset: boolean) → {encodeCalls, decodeCalls, encodeImages, decodeImages, seconds} inside UNet calls
Napi::Value UNetStats(const Napi::CallbackInfo& info);
Napi::Value EmptyCache(const Napi::CallbackInfo& info);    // release the CPU allocator's cached blocks
// Where the time and memory go (profile.h):
// (device, reset) → {allocatedBytes, peakAllocatedBytes, reservedBytes, peakReservedBytes} | null
Napi::Value CudaMemoryStatsJs(const Napi::CallbackInfo& info);
Napi::Value SetCudnnBenchmark(const Napi::CallbackInfo& info);  // (on) → previous value
Napi::Value GetCudnnBenchmark(const Napi::CallbackInfo& info);  // () → boolean
Napi::Value OpProfileStart(const Napi::CallbackInfo& info);     // ({sync}) → undefined
Napi::Value OpProfileStop(const Napi::CallbackInfo& info);      // () → {ops: [{name, calls, seconds}], totalSeconds, wallSeconds}

}  // namespace bia
