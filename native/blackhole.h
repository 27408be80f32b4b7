// The black hole's linear algebra on h-space codes (docs/method.md steps 6-7). The codes
// [n, C, H, W] (32,768 numbers each for the 256² model) stay in C++; only what the SVM needs
// crosses into JS: the float64 Gram matrix K = X·Xᵀ (libsvm-js fits on it as a precomputed
// kernel), and back the other way the SVM's n coefficients, from which the normal
// w = Σ c_i·x_i is built here. Signed distances (w·x + b)/‖w‖ are computed here too.
// Everything is float64 whatever the codes' dtype; nothing here knows about libsvm.
// The addon's functions (gram, linearCombination, …) are blackhole_js.h; they check shapes, and
// these functions check values (NaN / Inf: BIA_INVALID_ARGUMENT) on the compute thread.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "job_context.h"

namespace bia {

// K = X·Xᵀ of codes x [n, ...]: [n, n] float64 on the CPU, exactly symmetric.
at::Tensor gramMatrix(const at::Tensor& x, const JobContext& ctx);
// w = Σ c_i·x_i of codes x [n, ...] and coefficients c [n] (float64, CPU): x.shape[1:], float64 on x's device.
at::Tensor combineCodes(const at::Tensor& x, const at::Tensor& c, const JobContext& ctx);
// (w·x_i + b)/‖w‖ of codes x [n, ...w.shape] (or of one code of w's shape, `single`): [n] float64 on the CPU.
at::Tensor signedDistances(const at::Tensor& x, const at::Tensor& w, double b, bool single, const JobContext& ctx);
// scale·w/‖w‖ in float64, w's shape and device.
at::Tensor scaledUnit(const at::Tensor& w, double scale);

// Neighbours of h_r (docs/method.md step 3): h_j = h_r + α_j·u_j with α_j ~ U[0, alphaMax·‖h_r‖].
// `isotropic` (targets undefined): u_j a unit direction drawn from N(0, I). `manifold`:
// u_j = unit(h_ran − h_r) with h_ran = targets[j mod P] (the h of random generated samples). Drawn
// on the CPU from one seeded generator (the same numbers on every device), returned on h_r's device
// in its dtype; the alphas (absolute step lengths) in float64 on the CPU.
struct Neighbours {
  at::Tensor codes, alphas;
};
Neighbours neighboursOf(const at::Tensor& hR, const at::Tensor& targets, int64_t n, double alphaMax, uint64_t seed);

// Codes moved along one direction: out[m] = base[rows[m]] + steps[m]·direction (direction undefined:
// no move), computed in float64 and returned in base's dtype on its device.
at::Tensor offsetRows(const at::Tensor& base, const at::Tensor& direction, const std::vector<int64_t>& rows,
                      const std::vector<double>& steps);
// Rows taken from several batches into one: out[m] = parts[picks[m].first][picks[m].second].
at::Tensor stackRows(const std::vector<at::Tensor>& parts, const std::vector<std::pair<size_t, int64_t>>& picks);

}  // namespace bia
