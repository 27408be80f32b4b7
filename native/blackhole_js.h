// The addon's black-hole functions: the linear algebra of blackhole.h on Tensor handles, with
// the shapes checked here (values are checked on the compute thread).
#pragma once
#include <napi.h>

namespace bia {

// (x [n, ...], jobOpts) -> Promise<Tensor [n, n] float64, on the CPU (it is meant to be read)>
Napi::Value Gram(const Napi::CallbackInfo& info);
// (x [n, ...], coef Float64Array(n), jobOpts) -> Promise<Tensor float64 of x.shape[1:], on x's device>
Napi::Value LinearCombination(const Napi::CallbackInfo& info);
// (x [n, ...w.shape] or one code of w.shape, w, b, jobOpts) -> Promise<Float64Array(n)>
Napi::Value SignedDistance(const Napi::CallbackInfo& info);
// (w, scale, jobOpts) -> Promise<Tensor float64 scale·w/‖w‖, same shape and device>
Napi::Value UnitDirection(const Napi::CallbackInfo& info);
// (hR [1?, C, H, W], n, alphaMax (relative to ‖h_r‖), seed, targets [P, C, H, W] | null, jobOpts)
//   -> Promise<{codes: Tensor [n, C, H, W], alphas: Float64Array (absolute step lengths)}>
// targets null: isotropic directions; else u_j = unit(targets[j mod P] − h_r) (manifold).
Napi::Value SampleNeighbours(const Napi::CallbackInfo& info);
// (base [N, ...] | one code, rows number[] | null, direction | null, steps Float64Array | null, jobOpts)
//   -> Promise<Tensor [M, ...]>: base[rows[m]] + steps[m]·direction
Napi::Value OffsetCodes(const Napi::CallbackInfo& info);
// (parts Tensor[], picks [part, row, part, row, ...], jobOpts) -> Promise<Tensor> the picked rows stacked
Napi::Value TakeRows(const Napi::CallbackInfo& info);

}  // namespace bia
