// Mixed precision: LibTorch autocast for the calling thread while in scope (weights stay in their
// dtype; convolutions and matrix products run in float16/bfloat16, reductions in float32).
// Autocast state is thread-local, so jobs set it on the compute thread around their work.
#pragma once
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <optional>

namespace bia {

class AutocastGuard {
 public:
  AutocastGuard(c10::Device device, std::optional<at::ScalarType> dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::DeviceType::CPU;
  bool prevEnabled_ = false;
  at::ScalarType prevDtype_ = at::kFloat;
};

}  // namespace bia
