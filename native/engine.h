// The engine room: what LibTorch we run on (version, BLAS, threads, CUDA), thread control,
// and measured arithmetic rates (the sgemm/conv2d benchmark loop, also the proof that long
// work runs off the main thread with progress and abort).
#pragma once
#include <napi.h>

namespace bia {

// Apply the configured intra-op thread count on the calling (worker) thread if it changed.
// Cheap when nothing changed: at::init_num_threads() itself rebuilds a thread pool (~7 ms).
void syncThreads();

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info);   // sync, cheap
Napi::Value SetNumThreads(const Napi::CallbackInfo& info); // (n) intra-op threads (and BLAS threads)
Napi::Value Benchmark(const Napi::CallbackInfo& info);     // ({op,...}, jobOpts) -> Promise<{times,flops}>
Napi::Value Matmul(const Napi::CallbackInfo& info);
// (reset: boolean) → {encodeCalls, decodeCalls, encodeImages, decodeImages, seconds} inside UNet calls
Napi::Value UNetStats(const Napi::CallbackInfo& info);
Napi::Value EmptyCache(const Napi::CallbackInfo& info);    // release the CPU allocator's cached blocks        // (a, b, jobOpts) -> Promise<Tensor>
// Where the time and memory go (profile.h):
// (device, reset) → {allocatedBytes, peakAllocatedBytes, reservedBytes, peakReservedBytes} | null
Napi::Value CudaMemoryStatsJs(const Napi::CallbackInfo& info);
Napi::Value SetCudnnBenchmark(const Napi::CallbackInfo& info);  // (on) → previous value
Napi::Value GetCudnnBenchmark(const Napi::CallbackInfo& info);  // () → boolean
Napi::Value OpProfileStart(const Napi::CallbackInfo& info);     // ({sync}) → undefined
Napi::Value OpProfileStop(const Napi::CallbackInfo& info);      // () → {ops: [{name, calls, seconds}], totalSeconds, wallSeconds}

}  // namespace bia
