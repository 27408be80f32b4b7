// The engine room: what LibTorch we run on (BLAS, threads), thread control, and measured
// arithmetic rates (the sgemm/conv2d benchmark loop, also the proof that long work runs off the
// main thread with progress and abort). The addon's functions for it are engine_js.h.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "job_context.h"

namespace bia {

// Apply the configured intra-op thread count on the calling (worker) thread if it changed.
// Cheap when nothing changed: at::init_num_threads() itself rebuilds a thread pool (~7 ms).
void syncThreads();
// Configure n intra-op threads (jobs apply it on the compute thread) and as many BLAS threads;
// returns LibTorch's thread count on the calling thread.
int setThreads(int n);

// Which BLAS did the dynamic loader give LibTorch? Debian's LibTorch links the generic
// libblas.so.3, which the alternatives system points to the reference BLAS (slow) or OpenBLAS.
struct BlasInfo {
  std::string name = "unknown";
  std::string library;
  std::string config;
  int threads = -1;
};
BlasInfo detectBlas();

// OpenBLAS's own thread count for the scope, restored after (a no-op for other BLAS libraries). The
// attention's batched products are many small sgemms: with OpenBLAS's threads woken for each, next
// to LibTorch's OpenMP team, the 8 bmm calls of one demo UNet forward at batch 48 (256 x 64 x 256 per
// image) took 439 ms against 39 ms with OpenBLAS on one thread (docs/throughput.md). Scopes are for
// the compute thread (one at a time).
class BlasThreadsScope {
 public:
  explicit BlasThreadsScope(int threads);
  ~BlasThreadsScope();
  BlasThreadsScope(const BlasThreadsScope&) = delete;
  BlasThreadsScope& operator=(const BlasThreadsScope&) = delete;

 private:
  int previous_ = 0;
};

// A timed loop of one operation: `warmup` untimed then `iterations` timed runs, with progress
// ("warmup" / "measure", the seconds of the run) after every run and a stop at the next one when
// aborted.
struct BenchmarkSpec {
  std::string op;  // "sgemm" or "conv2d"
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = at::kFloat;
  int64_t warmup = 2, iterations = 5;
  bool channelsLast = false;
  int64_t m = 0, n = 0, k = 0;                                     // sgemm
  int64_t batch = 0, cin = 0, cout = 0, h = 0, w = 0, kernel = 0;  // conv2d
};
struct BenchmarkResult {
  std::vector<double> seconds;  // per timed run
  double flops = 0;             // per run
  int threads = 0;
};
BenchmarkResult runBenchmark(const BenchmarkSpec& s, const JobContext& ctx);

}  // namespace bia
