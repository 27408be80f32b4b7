// The `optimize` absorption of BIA (docs/method.md step 8): ĥ = h_r + δ optimised with Adam on
//   L = λ_id·max(0, cos(E(Dec(ĥ)), f_r) − τ_m) + μ·min_k ‖ĥ − h_k‖² / ‖h_r‖²        (L_wrapper)
//     + λ_sem·(MSE(Dec(ĥ), Dec(h_r)) + λ_perc·L_perc(Dec(ĥ), Dec(h_r)))              (L_sem)
// with ∂L/∂ĥ backpropagated through the identity encoder and the DDIM decoding Dec(·) (η = 0, any
// injection mode), either through every decoding step with hand-made gradient checkpointing
// (`full`: one step's activations alive at a time) or through Asyrp's one-step prediction
// P_t = x̂0 at t0 (`one-step`). The addon's absorbLoss / absorbOptimize are absorb_js.h.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "ddim.h"
#include "diffusion.h"
#include "identity.h"
#include "job_context.h"
#include "losses.h"

namespace bia {

enum class Backprop { Full, OneStep };
const char* backpropName(Backprop b);  // "full", "one-step"

struct AbsorbOptions {
  InjectMode mode = InjectMode::Asyrp;
  int64_t t0 = 500;
  int64_t steps = 40;
  int64_t tEdit = 0;
  Backprop backprop = Backprop::Full;
  double tauM = 0.25, mu = 1.0, lambdaId = 1.0, lambdaSem = 1.0, lambdaPerc = 0.5;
  Protocol protocol = Protocol::Bia;
  // Hidden, for tests: `checkpoint: false` backpropagates through the whole unrolled decode in
  // one autograd graph; `float64: true` runs float64 copies of both networks.
  bool checkpoint = true;
  bool float64 = false;
  // absorbOptimize only
  int64_t iterations = 50;
  double lr = 0.01;
  double startDistance = 0.0;
};

struct AbsorbTensors {
  at::Tensor xLat, hR, fR, wrap, dq;  // dq may be undefined
};

// What both entries take: the models, the perceptual net (null: the weight-free substitute), the
// tensors (checked against the models by the caller; values are checked here) and the options.
struct AbsorbSetup {
  std::shared_ptr<DiffusionState> diffusion;
  std::shared_ptr<EncoderState> encoder;
  std::shared_ptr<PerceptualNet> perceptual;
  AbsorbTensors tensors;
  AbsorbOptions options;
};

// The terms of L at one ĥ, and ∂L/∂ĥ.
struct Evaluation {
  double loss = 0, sim = 0, wrapper = 0, pull = 0, sem = 0, mse = 0, perc = 0;
  at::Tensor grad;  // ∂L/∂ĥ, like ĥ, in the loss dtype
};

// L and ∂L/∂ĥ at hHat (shaped like hR, or hR without its batch dimension); grad is shaped like hHat.
Evaluation absorbLoss(const AbsorbSetup& s, const at::Tensor& hHat, const JobContext& ctx);

// Adam on ĥ from h_r (see absorb.cc): the evaluated ĥ of lowest L, its image (the full decode),
// the history of L (grad left undefined), the index of the best evaluation and the absolute step size.
struct AbsorbResult {
  at::Tensor h, image;  // float32
  std::vector<Evaluation> history;
  int64_t best = -1;
  double lr = 0;
};
AbsorbResult absorbOptimize(const AbsorbSetup& s, const JobContext& ctx);

}  // namespace bia
