// DDIM on the UNet: the linear β schedule, the timestep sequence, η = 0 inversion to x_lat with
// h-space capture, and decoding from x_lat with an injected h in the four injection modes of
// docs/method.md. The DDIM step itself is ddimStep(); the h-space injection is in injectedEps().
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "job_context.h"
#include "unet.h"

namespace bia {

// β_t = linspace(1e-4, 2e-2, 1000) in float64; ᾱ_t = Π(1 − β_s); ᾱ(−1) = 1.
class Schedule {
 public:
  explicit Schedule(int64_t T = 1000, double betaStart = 1e-4, double betaEnd = 2e-2);
  double alphaBar(int64_t t) const { return t < 0 ? 1.0 : alphaBar_.at(static_cast<size_t>(t)); }
  int64_t T() const { return static_cast<int64_t>(alphaBar_.size()); }

 private:
  std::vector<double> alphaBar_;
};

// The released code's sequence: seq_k = int(linspace(0, 1, steps)[k] · t0), k = 0..steps−1, the float
// product truncated (0, 12, 25, …, 487, 500 for 500/40; for 700/50 seq_49 = 700 but seq_35 = 499, where
// floor(k·t0/(steps−1)) would give 500).
std::vector<int64_t> timestepSequence(int64_t t0, int64_t steps);

// One DDIM step from t to tNext (tNext > t inverts). x̂0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t, no clipping.
// epsDirection defaults to eps (Asyrp passes the unedited ε here); noise is used when eta > 0.
at::Tensor ddimStep(const at::Tensor& x, const at::Tensor& eps, int64_t t, int64_t tNext, const Schedule& s,
                    double eta = 0.0, const at::Tensor& epsDirection = {}, const at::Tensor& noise = {});

enum class InjectMode { Lagged, FirstStep, EveryStep, Asyrp };
InjectMode parseInjectMode(const std::string& name);
const char* injectModeName(InjectMode m);

// ε of one decoding call with ĥ injected as `mode` says (and, for asyrp while editing, the
// unedited ε for the direction term). first: the first decoding step; edit: t ≥ tEdit; hRef: h_r
// (every-step and asyrp add Δh = ĥ − h_r); prevH: lagged's unedited h of the previous call.
struct InjectedEps {
  at::Tensor eps, epsDir;
};
InjectedEps injectedEps(UNet& unet, const UNetFeatures& f, InjectMode mode, bool first, bool edit, const at::Tensor& h,
                        const at::Tensor& hRef, const at::Tensor& prevH);

struct InvertResult {
  at::Tensor xLat;             // x at t0
  at::Tensor hR;               // h of the last inversion UNet call
  std::vector<at::Tensor> hs;  // every call's h, when asked
  std::vector<int64_t> ts;     // the t of each UNet call
};

InvertResult ddimInvert(UNet& unet, const at::Tensor& x0, int64_t t0, int64_t steps, bool keepAll,
                        const JobContext& ctx);

struct DecodeOptions {
  InjectMode mode = InjectMode::Asyrp;
  double eta = 0.0;
  int64_t t0 = 500;
  int64_t steps = 40;
  int64_t tEdit = 0;        // every-step / asyrp edit only while t >= tEdit
  // Asyrp's quality boosting: steps with t < tBoost use η = etaBoost instead of eta (0: off).
  int64_t tBoost = 0;
  double etaBoost = 1.0;
  // Noise for eta > 0, drawn on the CPU (same on every device) from one generator per image:
  // image i of the whole decode call uses seed + 1000003·i, so results do not depend on how the
  // batch is split.
  uint64_t seed = 909090;
  int64_t firstIndex = 0;   // index of this batch's first image within the call
  at::Tensor hRef;          // h_r: Δh = h − hRef (required by every-step and asyrp)
  int64_t stopAfter = 0;    // > 0: return the state after this many steps (tests, inspection)
  // With stopAfter > 0: return the predicted x̂0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t of the last step run (ε from the
  // injected h, as the step's own x̂0) instead of the state after it; cheap labels part-way down the trajectory.
  bool predictX0 = false;
};

// Decode x_lat (batch 1 or B) with h (batch B, or undefined for no injection) → x0 [B, C, H, W].
at::Tensor ddimDecode(UNet& unet, const at::Tensor& xLat, const at::Tensor& h, const DecodeOptions& o,
                      const JobContext& ctx);

}  // namespace bia
