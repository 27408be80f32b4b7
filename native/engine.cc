#include "engine.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <functional>

#include "device.h"

namespace bia {

namespace {

std::atomic<int> configuredThreads{0};

}  // namespace

void syncThreads() {
  thread_local int applied = -1;
  const int want = configuredThreads.load();
  if (want > 0 && want != applied) {
    at::set_num_threads(want);
    applied = want;
  }
}

namespace {

int collectLibrary(struct dl_phdr_info* info, size_t, void* data) {
  auto* libs = static_cast<std::vector<std::string>*>(data);
  if (info->dlpi_name && info->dlpi_name[0]) libs->emplace_back(info->dlpi_name);
  return 0;
}

std::string realPath(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? std::string(buf) : p;
}

}  // namespace

BlasInfo detectBlas() {
  BlasInfo b;
  std::vector<std::string> libs;
  dl_iterate_phdr(collectLibrary, &libs);
  for (const auto& lib : libs) {
    const std::string real = realPath(lib);
    if (real.find("openblas") != std::string::npos) { b.name = "OpenBLAS"; b.library = real; break; }
    if (real.find("libmkl") != std::string::npos) { b.name = "MKL"; b.library = real; break; }
    if (real.find("blis") != std::string::npos) { b.name = "BLIS"; b.library = real; break; }
    if (real.find("atlas") != std::string::npos) { b.name = "ATLAS"; b.library = real; break; }
    if (real.find("libblas.so") != std::string::npos) { b.name = "reference"; b.library = real; }
  }
  using ConfigFn = char* (*)();
  using ThreadsFn = int (*)();
  if (auto cfg = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    b.name = "OpenBLAS";
    b.config = cfg();
  }
  if (auto th = reinterpret_cast<ThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) b.threads = th();
  if (b.name == "unknown" && at::hasMKL()) b.name = "MKL";
  return b;
}

namespace {
using OpenBlasGetFn = int (*)();
using OpenBlasSetFn = void (*)(int);
OpenBlasGetFn openBlasGet() {
  static const auto f = reinterpret_cast<OpenBlasGetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return f;
}
OpenBlasSetFn openBlasSet() {
  static const auto f = reinterpret_cast<OpenBlasSetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  return f;
}
}  // namespace

BlasThreadsScope::BlasThreadsScope(int threads) {
  if (!openBlasGet() || !openBlasSet()) return;
  previous_ = openBlasGet()();
  if (previous_ != threads) openBlasSet()(threads);
  else previous_ = 0;
}

BlasThreadsScope::~BlasThreadsScope() {
  if (previous_ > 0) openBlasSet()(previous_);
}

int setThreads(int n) {
  configuredThreads.store(n);
  at::set_num_threads(n);
  using SetFn = void (*)(int);
  if (auto f = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);  // BLAS threads
  return at::get_num_threads();
}

BenchmarkResult runBenchmark(const BenchmarkSpec& s, const JobContext& ctx) {
  const c10::Device device = s.device;
  const int64_t warmup = s.warmup, iterations = s.iterations;
  c10::InferenceMode guard;
  auto opts = at::TensorOptions().dtype(s.dtype).device(device);
  at::Tensor a, b, c;
  double flops = 0;
  std::function<void()> step;
  if (s.op == "sgemm") {
    a = at::randn({s.m, s.k}, opts);
    b = at::randn({s.k, s.n}, opts);
    c = at::empty({s.m, s.n}, opts);
    flops = 2.0 * s.m * s.n * s.k;
    step = [&] { at::mm_out(c, a, b); };
  } else {
    a = at::randn({s.batch, s.cin, s.h, s.w}, opts);
    b = at::randn({s.cout, s.cin, s.kernel, s.kernel}, opts);
    at::Tensor bias = at::randn({s.cout}, opts);
    if (s.channelsLast) {
      a = a.contiguous(at::MemoryFormat::ChannelsLast);
      b = b.contiguous(at::MemoryFormat::ChannelsLast);
    }
    flops = 2.0 * s.batch * s.cout * s.h * s.w * s.cin * s.kernel * s.kernel;
    step = [&, bias] { c = at::conv2d(a, b, bias, 1, s.kernel / 2); };
  }
  std::vector<double> times;
  const int64_t total = warmup + iterations;
  for (int64_t i = 0; i < total; i++) {
    ctx.checkAbort();
    auto t0 = std::chrono::steady_clock::now();
    step();
    synchronize(device);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) times.push_back(dt);
    ctx.progress(static_cast<double>(i + 1), static_cast<double>(total), i < warmup ? "warmup" : "measure", dt);
  }
  return {times, flops, at::get_num_threads()};
}

}  // namespace bia
