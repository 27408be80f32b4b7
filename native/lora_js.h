// The Node-API face of lora.h: mergeAdapter.
#pragma once
#include <napi.h>

namespace bia {

Napi::Value MergeAdapter(const Napi::CallbackInfo& info);

}  // namespace bia
