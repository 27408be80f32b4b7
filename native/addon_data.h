// Per-environment state of the addon (constructors for classes created from C++).
#pragma once
#include <napi.h>

namespace bia {

struct AddonData {
  Napi::FunctionReference tensorCtor;
  Napi::FunctionReference cancelTokenCtor;
  static AddonData& get(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
};

}  // namespace bia
