// Per-environment state of the addon (constructors for classes created from C++).
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

namespace bia {

struct AddonData {
  Napi::FunctionReference tensorCtor;
  Napi::FunctionReference cancelTokenCtor;
  Napi::FunctionReference diffusionCtor;
  Napi::FunctionReference encoderCtor;
  Napi::FunctionReference perceptualCtor;
  Napi::FunctionReference attributeCtor;
  Napi::FunctionReference trainerCtor;
  // Set when this environment (the main thread's, or a worker thread's) is torn down.
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
  static AddonData& get(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
};

}  // namespace bia
