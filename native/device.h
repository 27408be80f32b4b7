// Device and dtype options, parsed the same way everywhere.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace bia {

// "cpu", "cuda", "cuda:N". Throws BIA_DEVICE_UNAVAILABLE with a clear reason when CUDA
// is asked for on a CPU-only LibTorch, when no GPU is visible, or when N is out of range.
c10::Device parseDevice(const std::string& spec);
std::string deviceName(const c10::Device& device);

// "float32", "float16", "bfloat16", "float64", "uint8", "int32", "int64", "bool".
c10::ScalarType parseDtype(const std::string& name);
std::string dtypeName(c10::ScalarType type);

struct CudaDevice {
  int index;
  std::string name;
  int64_t totalMemory;
};

bool cudaBuilt();                     // libtorch_cuda is linked and registered
std::vector<CudaDevice> cudaDevices(); // empty without CUDA
void synchronize(const c10::Device& device);

}  // namespace bia
