// The `optimize` absorption of BIA (docs/METHOD.md step 8): ĥ = h_r + δ optimised with Adam on
//   L = λ_id·max(0, cos(E(Dec(ĥ)), f_r) − τ_m) + μ·min_k ‖ĥ − h_k‖² / ‖h_r‖²        (L_wrapper)
//     + λ_sem·(MSE(Dec(ĥ), Dec(h_r)) + λ_perc·L_perc(Dec(ĥ), Dec(h_r)))              (L_sem)
// with ∂L/∂ĥ backpropagated through the identity encoder and the DDIM decoding Dec(·) (η = 0, any
// injection mode), either through every decoding step with hand-made gradient checkpointing
// (`full`: one step's activations alive at a time) or through Asyrp's one-step prediction
// P_t = x̂0 at t0 (`one-step`).
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
