// Temporary scaffolding for the MobileFaceNet tests, until the identity-encoder API replaces it.
#pragma once
#include <napi.h>

namespace bia {

// mobileFaceNet(width, embeddingSize) → {stateDict(), loadStateDict(entries, strict, jobOpts),
// forward(x, jobOpts)}: a CPU float32 MobileFaceNet (eval mode) with random weights.
Napi::Value MobileFaceNetExport(const Napi::CallbackInfo& info);

}  // namespace bia
