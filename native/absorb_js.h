// The addon's absorbLoss / absorbOptimize (absorb.h): arguments read and checked against the
// models, results handed to JS.
#pragma once
#include <napi.h>

namespace bia {

// (diffusion, encoder, perceptual | null, tensors, options, hHat, jobOpts) →
//   Promise<{loss, sim, wrapper, pull, sem, mse, perc, grad: Tensor, perceptual, backprop}>
Napi::Value AbsorbLoss(const Napi::CallbackInfo& info);
// (diffusion, encoder, perceptual | null, tensors, options, jobOpts) →
//   Promise<{h, image, history: {loss, sim, wrapper, pull, sem}, best, iterations, perceptual, backprop, lr}>
Napi::Value AbsorbOptimize(const Napi::CallbackInfo& info);

}  // namespace bia
