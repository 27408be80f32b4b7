#include "blackhole.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstring>
#include <string>

#include "device.h"
#include "errors.h"
#include "job.h"
#include "tensor.h"

namespace bia {

namespace {

std::string shapeStr(at::IntArrayRef s) { return c10::str(s); }

// A floating-point tensor handle, or BIA_INVALID_ARGUMENT naming what it got.
at::Tensor floatingArg(const Napi::Value& v, const char* what) {
  at::Tensor t = TensorHandle::From(v, what);
  if (!at::isFloatingType(t.scalar_type())) {
    invalidArgument(std::string(what) + " must be a floating-point tensor, got " + dtypeName(t.scalar_type()));
  }
  return t;
}

// Codes [n, ...]: at least two dimensions, n >= 1 and a non-empty code.
at::Tensor codesArg(const Napi::Value& v, const char* what) {
  at::Tensor x = floatingArg(v, what);
  if (x.dim() < 2 || x.size(0) < 1 || x.numel() == 0) {
    invalidArgument(std::string(what) + " must be a batch of codes [n, ...] with n >= 1 and non-empty codes, got shape " + shapeStr(x.sizes()));
  }
  return x;
}

double finiteNumberArg(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) invalidArgument(std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) invalidArgument(std::string(what) + " must be a finite number, got " + std::to_string(d));
  return d;
}

// Worker thread: refuse NaN/Inf, naming the first bad row of a [n, d] view.
void requireFinite(const at::Tensor& rows, const char* what) {
  at::Tensor bad = at::logical_not(at::isfinite(rows));
  if (!bad.any().item<bool>()) return;
  if (rows.dim() == 2) {
    const int64_t first = bad.any(1).nonzero().min().item<int64_t>();
    invalidArgument(std::string(what) + " hold NaN or Inf (first in code " + std::to_string(first) + " of " + std::to_string(rows.size(0)) + ")");
  }
  invalidArgument(std::string(what) + " holds NaN or Inf");
}

// [n, d] float64 on the codes' device.
at::Tensor flatRows(const at::Tensor& x) { return x.reshape({x.size(0), -1}).to(at::kDouble).contiguous(); }

}  // namespace

Napi::Value Gram(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor x = codesArg(info[0], "codes");
    return startJob(info.Env(), info[1], "bia.blackhole.gram", [x](JobContext& ctx) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor X = flatRows(x);
      requireFinite(X, "codes");
      ctx.checkAbort();
      at::Tensor K = at::mm(X, X.t());
      // Exactly symmetric (it already is unless the BLAS blocks the two triangles differently).
      K = ((K + K.t()) * 0.5).to(at::kCPU).contiguous();
      return [K](Napi::Env env) { return TensorHandle::Wrap(env, K); };
    });
  });
}

Napi::Value LinearCombination(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor x = codesArg(info[0], "codes");
    const int64_t n = x.size(0);
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      invalidArgument("coef must be a Float64Array");
    }
    Napi::Float64Array ca = info[1].As<Napi::Float64Array>();
    if (static_cast<int64_t>(ca.ElementLength()) != n) {
      invalidArgument("coef has " + std::to_string(ca.ElementLength()) + " values but there are " + std::to_string(n) + " codes");
    }
    // Copied here: the JS buffer may change once we return.
    at::Tensor c = at::empty({n}, at::TensorOptions().dtype(at::kDouble));
    const double* cd = ca.Data();
    std::memcpy(c.data_ptr(), cd, static_cast<size_t>(n) * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
      if (!std::isfinite(cd[i])) invalidArgument("coef[" + std::to_string(i) + "] is " + std::to_string(cd[i]) + ", not a finite number");
    }
    return startJob(info.Env(), info[2], "bia.blackhole.linearCombination", [x, c](JobContext& ctx) -> Finisher {
      c10::InferenceMode guard;
      const int64_t n = x.size(0);
      requireFinite(x.reshape({n, -1}), "codes");
      ctx.checkAbort();
      // Only codes with a non-zero coefficient (the support vectors) are converted to float64.
      at::Tensor keep = c.nonzero().reshape({-1});
      at::Tensor X = flatRows(x.index_select(0, keep.to(x.device())));
      at::Tensor w = at::mv(X.t(), c.index_select(0, keep).to(x.device()));
      w = w.reshape(x.sizes().slice(1)).contiguous();
      synchronize(w.device());
      return [w](Napi::Env env) { return TensorHandle::Wrap(env, w); };
    });
  });
}

Napi::Value SignedDistance(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor x = floatingArg(info[0], "codes");
    at::Tensor w = floatingArg(info[1], "w");
    const double b = finiteNumberArg(info[2], "b");
    const bool single = x.sizes() == w.sizes();
    if (!single && !(x.dim() == w.dim() + 1 && x.sizes().slice(1) == w.sizes())) {
      invalidArgument("signedDistance needs codes [n, ...] whose code shape is w's " + shapeStr(w.sizes()) + ", got codes " + shapeStr(x.sizes()));
    }
    if (w.numel() == 0) invalidArgument("w is empty");
    return startJob(info.Env(), info[3], "bia.blackhole.signedDistance", [x, w, b, single](JobContext& ctx) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor X = single ? x.reshape({1, -1}).to(at::kDouble) : flatRows(x);
      at::Tensor wv = w.reshape({-1}).to(X.device(), at::kDouble);
      requireFinite(wv, "w");
      requireFinite(X, "codes");
      const double norm = wv.norm().item<double>();
      if (!(norm > 0)) invalidArgument("w is zero: a boundary normal must have a positive norm");
      ctx.checkAbort();
      at::Tensor s = ((at::mv(X, wv) + b) / norm).to(at::kCPU).contiguous();
      return [s](Napi::Env env) { return toTypedArray(env, s); };
    });
  });
}

Napi::Value UnitDirection(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor w = floatingArg(info[0], "w");
    const double scale = finiteNumberArg(info[1], "scale");
    if (w.numel() == 0) invalidArgument("w is empty");
    return startJob(info.Env(), info[2], "bia.blackhole.unitDirection", [w, scale](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor wd = w.to(at::kDouble);
      requireFinite(wd, "w");
      const double norm = wd.norm().item<double>();
      if (!(norm > 0)) invalidArgument("w is zero: a boundary normal must have a positive norm");
      at::Tensor r = (wd * (scale / norm)).contiguous();
      synchronize(r.device());
      return [r](Napi::Env env) { return TensorHandle::Wrap(env, r); };
    });
  });
}

}  // namespace bia

namespace bia {

// Neighbours of h_r (METHOD.md step 3, `isotropic`): h_j = h_r + α_j·u_j with u_j a unit
// direction drawn from N(0, I) and α_j ~ U[0, alphaMax·‖h_r‖]. Drawn on the CPU from one seeded
// generator (the same numbers on every device), returned on h_r's device in its dtype.
Napi::Value SampleNeighbours(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor hR = TensorHandle::From(info[0], "hR");
    if (hR.dim() < 1 || hR.numel() == 0) invalidArgument("hR must be a non-empty tensor");
    if (hR.dim() >= 2 && hR.size(0) == 1) hR = hR.squeeze(0);
    if (!info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber()) invalidArgument("n, alphaMax and seed must be numbers");
    const double nD = info[1].As<Napi::Number>().DoubleValue();
    const double alphaMax = info[2].As<Napi::Number>().DoubleValue();
    const double seedD = info[3].As<Napi::Number>().DoubleValue();
    if (!(nD >= 1 && nD <= 65536 && nD == std::floor(nD))) invalidArgument("n must be an integer in [1, 65536]");
    if (!(alphaMax > 0 && std::isfinite(alphaMax))) invalidArgument("alphaMax must be a positive finite number");
    if (!(seedD >= 0 && seedD == std::floor(seedD) && seedD < 9.0e15)) invalidArgument("seed must be a non-negative integer");
    const int64_t n = static_cast<int64_t>(nD);
    const uint64_t seed = static_cast<uint64_t>(seedD);
    return startJob(info.Env(), info[4], "bia.blackhole.neighbours", [hR, n, alphaMax, seed](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor h = hR.to(at::kCPU, at::kDouble).reshape({1, -1});
      if (!at::isfinite(h).all().item<bool>()) invalidArgument("hR contains NaN or Inf");
      const double norm = h.norm().item<double>();
      if (!(norm > 0)) invalidArgument("hR is zero: α is relative to ‖h_r‖");
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
      at::Tensor u = at::randn({n, h.size(1)}, gen, at::TensorOptions().dtype(at::kDouble));
      u = u / u.norm(2, {1}, true);
      at::Tensor alphas = at::rand({n}, gen, at::TensorOptions().dtype(at::kDouble)) * (alphaMax * norm);
      std::vector<int64_t> shape{n};
      for (int64_t s : hR.sizes()) shape.push_back(s);
      at::Tensor codes = (h + alphas.unsqueeze(1) * u).reshape(shape).to(hR.device(), hR.scalar_type()).contiguous();
      synchronize(hR.device());
      at::Tensor a = alphas.contiguous();
      return [codes, a](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("codes", TensorHandle::Wrap(env, codes));
        out.Set("alphas", toTypedArray(env, a));
        return out;
      };
    });
  });
}

}  // namespace bia
