// The addon's imageLosses (losses.h, with the VGG16 distance of a PerceptualModel when given).
#pragma once
#include <napi.h>

namespace bia {

// (a, b, perceptual: PerceptualModel handle | null, jobOpts) → Promise<{mse, ssim, gradL1, perceptual:
// Float64Array each, perceptualName: string}>; with a handle, `perceptual` is its distance.
Napi::Value ImageLossesJs(const Napi::CallbackInfo& info);

}  // namespace bia
