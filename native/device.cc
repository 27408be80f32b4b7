#include "device.h"

#include <dlfcn.h>
#include <torch/cuda.h>

#include "errors.h"

namespace bia {

bool cudaBuilt() {
#ifdef BIA_TORCH_CUDA
  return true;
#else
  return torch::cuda::is_available();
#endif
}

c10::Device parseDevice(const std::string& spec) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec.rfind("cuda", 0) != 0) {
    invalidArgument("device must be 'cpu', 'cuda' or 'cuda:N', got '" + spec + "'");
  }
  int index = 0;
  if (spec.size() > 4) {
    if (spec[4] != ':' || spec.size() == 5) invalidArgument("device must be 'cpu', 'cuda' or 'cuda:N', got '" + spec + "'");
    for (size_t i = 5; i < spec.size(); i++) {
      if (spec[i] < '0' || spec[i] > '9' || i > 8) invalidArgument("bad CUDA device index in '" + spec + "'");
    }
    index = std::stoi(spec.substr(5));
  }
  if (!cudaBuilt()) {
    throw BiaError(ErrorCode::DeviceUnavailable,
                   "device '" + spec + "' requested, but this addon was built against a CPU-only LibTorch; "
                   "rebuild against a CUDA LibTorch (see docs/gpu.md, 'Building against a CUDA LibTorch')");
  }
  if (!torch::cuda::is_available()) {
    throw BiaError(ErrorCode::DeviceUnavailable,
                   "device '" + spec + "' requested, but no CUDA GPU is visible (driver missing or CUDA_VISIBLE_DEVICES empty)");
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    throw BiaError(ErrorCode::DeviceUnavailable,
                   "device '" + spec + "' requested, but only " + std::to_string(count) + " CUDA device(s) exist");
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

std::string deviceName(const c10::Device& device) {
  if (device.is_cpu()) return "cpu";
  if (device.is_cuda()) return "cuda:" + std::to_string(device.has_index() ? device.index() : 0);
  return device.str();
}

c10::ScalarType parseDtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float64") return at::kDouble;
  if (name == "uint8") return at::kByte;
  if (name == "int32") return at::kInt;
  if (name == "int64") return at::kLong;
  if (name == "bool") return at::kBool;
  invalidArgument("dtype must be one of float32, float16, bfloat16, float64, uint8, int32, int64, bool; got '" + name + "'");
}

std::string dtypeName(c10::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kDouble: return "float64";
    case at::kByte: return "uint8";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kBool: return "bool";
    default: return c10::toString(type);
  }
}

// Device names come from the CUDA driver API (libcuda.so.1, stable ABI), loaded only when
// LibTorch reports CUDA, so the addon needs no CUDA headers to build.
std::vector<CudaDevice> cudaDevices() {
  std::vector<CudaDevice> out;
  if (!torch::cuda::is_available()) return out;
  const int count = static_cast<int>(torch::cuda::device_count());
  using InitFn = int (*)(unsigned);
  using GetFn = int (*)(int*, int);
  using NameFn = int (*)(char*, int, int);
  using MemFn = int (*)(size_t*, int);
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (!lib) lib = dlopen("libcuda.so.1", RTLD_NOW);
  InitFn init = lib ? reinterpret_cast<InitFn>(dlsym(lib, "cuInit")) : nullptr;
  GetFn get = lib ? reinterpret_cast<GetFn>(dlsym(lib, "cuDeviceGet")) : nullptr;
  NameFn name = lib ? reinterpret_cast<NameFn>(dlsym(lib, "cuDeviceGetName")) : nullptr;
  MemFn mem = lib ? reinterpret_cast<MemFn>(dlsym(lib, "cuDeviceTotalMem_v2")) : nullptr;
  const bool ok = init && get && name && init(0) == 0;
  for (int i = 0; i < count; i++) {
    CudaDevice d{i, "CUDA device " + std::to_string(i), 0};
    int handle = 0;
    if (ok && get(&handle, i) == 0) {
      char buf[256] = {0};
      if (name(buf, sizeof(buf) - 1, handle) == 0) d.name = buf;
      size_t bytes = 0;
      if (mem && mem(&bytes, handle) == 0) d.totalMemory = static_cast<int64_t>(bytes);
    }
    out.push_back(d);
  }
  return out;
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

}  // namespace bia
