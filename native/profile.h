// Where the time and memory go: an op-level profiler on ATen's RecordFunction callbacks, the
// CUDA caching allocator's memory statistics, and cuDNN's benchmark (autotuning) mode.
// Plain C++ on LibTorch (no Node-API here); the bindings live in engine_js.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bia {

struct OpStat {
  std::string name;  // the ATen operator, e.g. "aten::conv2d"
  int64_t calls = 0;
  double seconds = 0;  // wall time inside top-level calls of this op
};

struct OpProfile {
  std::vector<OpStat> ops;  // sorted by seconds, descending
  double totalSeconds = 0;  // sum of ops[].seconds
  double wallSeconds = 0;   // from start to stop
};

// Start counting top-level ATen ops on every thread (only the outermost op of a nested chain,
// aten::conv2d → aten::convolution → ..., is timed, so totals do not double count). With
// sync (and a CUDA LibTorch with a visible GPU) each top-level op synchronises the device
// before its clock starts and before it stops, so the time is device time.
// Returns false when a profile is already running.
bool opProfileStart(bool sync);
// Stop and return what was counted; nullopt when no profile is running.
std::optional<OpProfile> opProfileStop();
bool opProfileRunning();

struct CudaMemoryStats {
  int64_t allocatedBytes = 0;
  int64_t peakAllocatedBytes = 0;
  int64_t reservedBytes = 0;
  int64_t peakReservedBytes = 0;
};

// The CUDA caching allocator's aggregate statistics for `device` (peaks since the last reset;
// reset=true starts new peaks after reading). nullopt on a CPU-only build or with no GPU
// visible. The caller checks that `device` is below torch::cuda::device_count().
std::optional<CudaMemoryStats> cudaMemoryStats(int device, bool reset);

// cuDNN benchmark mode (process-wide): returns the previous value.
bool setCudnnBenchmark(bool on);
bool cudnnBenchmark();
// At addon load: BIA_CUDNN_BENCHMARK=1 turns benchmark mode on (0 turns it off; unset keeps
// LibTorch's default, off).
void applyCudnnBenchmarkEnv();

}  // namespace bia
