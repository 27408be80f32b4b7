// The checkpoint functions of the addon (see ts/native.ts); the reader and writer are checkpoint.h.
#pragma once
#include <napi.h>

namespace bia {

Napi::Value ReadCheckpoint(const Napi::CallbackInfo& info);    // (path, jobOpts) → Promise<{format, metadata, tensors}>
Napi::Value WriteSafetensors(const Napi::CallbackInfo& info);  // (path, [[name, tensor]...], metadata, jobOpts) → Promise<void>

}  // namespace bia
