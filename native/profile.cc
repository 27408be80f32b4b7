#include "profile.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/cuda.h>

#ifdef BIA_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace bia {

namespace {

using Clock = std::chrono::steady_clock;

// RecordFunction::name() is `const char*` in recent LibTorch and an at::StringView in older
// releases; both become a std::string here.
inline std::string opName(const char* name) { return name ? std::string(name) : std::string("?"); }
template <typename S>
std::string opName(const S& name) {
  return opName(name.str());
}

struct Totals {
  int64_t calls = 0;
  double seconds = 0;
};

// One profile at a time. `mu` guards everything here except `activeSession` and `activeSync`,
// which the callbacks read without the lock on every op.
std::mutex mu;
bool running = false;
uint64_t lastSession = 0;
at::CallbackHandle handle = 0;
Clock::time_point startedAt;
std::unordered_map<std::string, Totals> totals;
std::atomic<uint64_t> activeSession{0};  // 0: none
std::atomic<bool> activeSync{false};

// Nesting depth of profiled ops on this thread: only depth-0 ops are timed.
thread_local int depth = 0;

// What a top-level op carries from its start callback to its end callback.
struct TopLevelOp : at::ObserverContext {
  uint64_t session = 0;
  bool sync = false;
  Clock::time_point t0;
};

void syncDevice() {
  // Only enabled when torch::cuda::is_available() was true at start. Never throw out of a callback.
  try {
    torch::cuda::synchronize();
  } catch (...) {
  }
}

std::unique_ptr<at::ObserverContext> onOpStart(const at::RecordFunction&) {
  // Ops inside an intra-op parallel region run inside an op on the thread that opened it.
  if (depth++ > 0 || at::in_parallel_region()) return nullptr;
  const uint64_t session = activeSession.load(std::memory_order_acquire);
  if (session == 0) return nullptr;
  try {
    auto ctx = std::make_unique<TopLevelOp>();
    ctx->session = session;
    ctx->sync = activeSync.load(std::memory_order_relaxed);
    if (ctx->sync) syncDevice();  // work queued before this op is not its time
    ctx->t0 = Clock::now();
    return ctx;
  } catch (...) {
    return nullptr;
  }
}

void onOpEnd(const at::RecordFunction& fn, at::ObserverContext* observer) {
  --depth;
  if (!observer) return;
  auto* ctx = static_cast<TopLevelOp*>(observer);
  if (ctx->sync) syncDevice();
  const double dt = std::chrono::duration<double>(Clock::now() - ctx->t0).count();
  try {
    std::string name = opName(fn.name());
    std::lock_guard<std::mutex> lock(mu);
    if (!running || ctx->session != lastSession) return;  // an op that outlived its profile
    Totals& t = totals[name];
    t.calls += 1;
    t.seconds += dt;
  } catch (...) {
  }
}

}  // namespace

bool opProfileStart(bool sync) {
  std::lock_guard<std::mutex> lock(mu);
  if (running) return false;
  totals.clear();
  const bool cudaSync = sync && torch::cuda::is_available();
  activeSync.store(cudaSync, std::memory_order_relaxed);
  activeSession.store(++lastSession, std::memory_order_release);
  // RecordFunction is on by default on every thread (it is thread-local state); make sure the
  // calling thread has it, as InferenceMode and autograd do not turn it off.
  if (!at::isRecordFunctionEnabled()) at::enableRecordFunction(true);
  handle = at::addGlobalCallback(at::RecordFunctionCallback(onOpStart, onOpEnd)
                                     .needsInputs(false)
                                     .samplingProb(1.0)
                                     .scopes({at::RecordScope::FUNCTION}));
  running = true;
  startedAt = Clock::now();
  return true;
}

std::optional<OpProfile> opProfileStop() {
  std::unordered_map<std::string, Totals> taken;
  OpProfile out;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!running) return std::nullopt;
    out.wallSeconds = std::chrono::duration<double>(Clock::now() - startedAt).count();
    at::removeCallback(handle);
    handle = 0;
    activeSession.store(0, std::memory_order_release);
    running = false;
    taken.swap(totals);
  }
  out.ops.reserve(taken.size());
  for (auto& kv : taken) {
    out.ops.push_back(OpStat{kv.first, kv.second.calls, kv.second.seconds});
    out.totalSeconds += kv.second.seconds;
  }
  std::sort(out.ops.begin(), out.ops.end(), [](const OpStat& a, const OpStat& b) {
    return a.seconds != b.seconds ? a.seconds > b.seconds : a.name < b.name;
  });
  return out;
}

bool opProfileRunning() {
  std::lock_guard<std::mutex> lock(mu);
  return running;
}

std::optional<CudaMemoryStats> cudaMemoryStats(int device, bool reset) {
#ifdef BIA_TORCH_CUDA
  if (!torch::cuda::is_available()) return std::nullopt;
  const auto index = static_cast<c10::DeviceIndex>(device);
  // The allocator sets up its per-device state at CUDA's lazy initialisation; an empty CUDA
  // tensor triggers that (it allocates nothing) so the query below is valid in a fresh process.
  (void)at::empty({0}, at::TensorOptions().dtype(at::kFloat).device(c10::Device(c10::kCUDA, index)));
  // `auto`: DeviceStats moved from c10::cuda::CUDACachingAllocator to c10::CachingDeviceAllocator.
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  CudaMemoryStats s;
  // Stat arrays are indexed by StatType; AGGREGATE = 0.
  s.allocatedBytes = stats.allocated_bytes[0].current;
  s.peakAllocatedBytes = stats.allocated_bytes[0].peak;
  s.reservedBytes = stats.reserved_bytes[0].current;
  s.peakReservedBytes = stats.reserved_bytes[0].peak;
  if (reset) c10::cuda::CUDACachingAllocator::resetPeakStats(index);
  return s;
#else
  (void)device;
  (void)reset;
  return std::nullopt;
#endif
}

bool setCudnnBenchmark(bool on) {
  auto& ctx = at::globalContext();
  const bool previous = ctx.benchmarkCuDNN();
  ctx.setBenchmarkCuDNN(on);
  return previous;
}

bool cudnnBenchmark() { return at::globalContext().benchmarkCuDNN(); }

void applyCudnnBenchmarkEnv() {
  const char* v = std::getenv("BIA_CUDNN_BENCHMARK");
  if (!v) return;
  if (std::strcmp(v, "1") == 0 || std::strcmp(v, "true") == 0) setCudnnBenchmark(true);
  else if (std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0) setCudnnBenchmark(false);
}

}  // namespace bia
