// Per-environment state of the addon (the constructors of its JS classes, for handles made in C++).
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace bia {

struct AddonData {
  // Each handle class's constructor under its JS class name (registered by Handle::Init).
  std::map<std::string, Napi::FunctionReference, std::less<>> constructors;
  // Set when this environment (the main thread's, or a worker thread's) is torn down.
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
  static AddonData& get(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
};

}  // namespace bia
