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
      return tensorResult(K);
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
      return tensorResult(w);
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
      return tensorResult(r);
    });
  });
}

}  // namespace bia

namespace bia {

// Neighbours of h_r (METHOD.md step 3): h_j = h_r + α_j·u_j with α_j ~ U[0, alphaMax·‖h_r‖].
// `isotropic`: u_j a unit direction drawn from N(0, I). `manifold`: u_j = unit(h_ran − h_r) with
// h_ran = targets[j mod P] (the h of random generated samples). Drawn on the CPU from one seeded
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
    at::Tensor targets;
    if (!info[4].IsUndefined() && !info[4].IsNull()) {
      targets = codesArg(info[4], "targets");
      if (targets.sizes().slice(1) != hR.sizes()) {
        invalidArgument("targets must be codes [P, " + shapeStr(hR.sizes()).substr(1) + " like h_r, got " + shapeStr(targets.sizes()));
      }
    }
    const int64_t n = static_cast<int64_t>(nD);
    const uint64_t seed = static_cast<uint64_t>(seedD);
    return startJob(info.Env(), info[5], "bia.blackhole.neighbours", [hR, targets, n, alphaMax, seed](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor h = hR.to(at::kCPU, at::kDouble).reshape({1, -1});
      if (!at::isfinite(h).all().item<bool>()) invalidArgument("hR contains NaN or Inf");
      const double norm = h.norm().item<double>();
      if (!(norm > 0)) invalidArgument("hR is zero: α is relative to ‖h_r‖");
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
      at::Tensor u;
      if (targets.defined()) {
        at::Tensor d = targets.to(at::kCPU, at::kDouble).reshape({targets.size(0), -1}) - h;
        requireFinite(d, "targets");
        at::Tensor norms = d.norm(2, {1}, true);
        if (!(norms.min().item<double>() > 0)) invalidArgument("a target equals h_r: its direction is undefined");
        u = (d / norms).index_select(0, at::arange(n, at::TensorOptions().dtype(at::kLong)).remainder(targets.size(0)));
      } else {
        u = at::randn({n, h.size(1)}, gen, at::TensorOptions().dtype(at::kDouble));
        u = u / u.norm(2, {1}, true);
      }
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

namespace {

std::vector<int64_t> indexArray(const Napi::Value& v, const char* what, int64_t limit) {
  if (!v.IsArray()) invalidArgument(std::string(what) + " must be an array of row indices");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d < static_cast<double>(limit) && d == std::floor(d))) {
      invalidArgument(std::string(what) + "[" + std::to_string(i) + "] must be an integer row index below " + std::to_string(limit));
    }
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

}  // namespace

// Codes moved along one direction: out[m] = base[rows[m]] + steps[m]·direction, computed in
// float64 and returned in base's dtype on its device. base is [N, ...] (or one code, N = 1),
// direction one code (any float dtype; null: no move), steps a Float64Array (null: zeros).
Napi::Value OffsetCodes(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor base = floatingArg(info[0], "base");
    if (base.numel() == 0) invalidArgument("base must be non-empty");
    at::Tensor dir;
    const bool hasDir = !info[2].IsUndefined() && !info[2].IsNull();
    if (hasDir) {
      dir = floatingArg(info[2], "direction");
      if (dir.dim() == base.dim() && dir.size(0) == 1) dir = dir.squeeze(0);
    }
    // A single code: the direction's shape (or base [1, ...]).
    if (hasDir && base.sizes() == dir.sizes()) base = base.unsqueeze(0);
    if (base.dim() < 2) invalidArgument("base must be codes [N, ...], got shape " + shapeStr(base.sizes()));
    if (hasDir && base.sizes().slice(1) != dir.sizes()) {
      invalidArgument("direction has shape " + shapeStr(dir.sizes()) + " but the codes are " + shapeStr(base.sizes().slice(1)));
    }
    std::vector<int64_t> rows;
    if (info[1].IsUndefined() || info[1].IsNull()) {
      for (int64_t i = 0; i < base.size(0); i++) rows.push_back(i);
    } else {
      rows = indexArray(info[1], "rows", base.size(0));
    }
    if (rows.empty()) invalidArgument("rows must name at least one code");
    std::vector<double> steps(rows.size(), 0.0);
    if (!info[3].IsUndefined() && !info[3].IsNull()) {
      if (!hasDir) invalidArgument("steps need a direction");
      if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) invalidArgument("steps must be a Float64Array");
      Napi::Float64Array sa = info[3].As<Napi::Float64Array>();
      if (sa.ElementLength() != rows.size()) invalidArgument("steps must have one entry per row (" + std::to_string(rows.size()) + "), got " + std::to_string(sa.ElementLength()));
      for (size_t i = 0; i < rows.size(); i++) {
        if (!std::isfinite(sa[i])) invalidArgument("steps[" + std::to_string(i) + "] is not finite");
        steps[i] = sa[i];
      }
    }
    return startJob(info.Env(), info[4], "bia.blackhole.offset", [base, dir, rows, steps](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor idx = at::tensor(rows, at::TensorOptions().dtype(at::kLong)).to(base.device());
      at::Tensor out = base.index_select(0, idx);
      if (dir.defined()) {
        std::vector<int64_t> sshape(static_cast<size_t>(out.dim()), 1);
        sshape[0] = static_cast<int64_t>(steps.size());
        at::Tensor st = at::tensor(steps, at::TensorOptions().dtype(at::kDouble)).reshape(sshape).to(base.device());
        out = (out.to(at::kDouble) + st * dir.to(base.device(), at::kDouble).unsqueeze(0)).to(base.scalar_type());
      }
      out = out.contiguous();
      synchronize(out.device());
      return tensorResult(out);
    });
  });
}

// Rows taken from several batches into one: out[m] = parts[picks[2m]][picks[2m + 1]].
// Every part must have the same row shape, dtype and device.
Napi::Value TakeRows(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0) invalidArgument("parts must be a non-empty array of tensors");
    Napi::Array pa = info[0].As<Napi::Array>();
    std::vector<at::Tensor> parts;
    for (uint32_t i = 0; i < pa.Length(); i++) {
      at::Tensor t = TensorHandle::From(pa.Get(i), "parts[i]");
      if (t.dim() < 1) invalidArgument("every part must be a batch [N, ...]");
      if (!parts.empty() && (t.sizes().slice(1) != parts[0].sizes().slice(1) || t.scalar_type() != parts[0].scalar_type() || t.device() != parts[0].device())) {
        invalidArgument("parts must share their row shape, dtype and device; part " + std::to_string(i) + " is " + shapeStr(t.sizes()) + " vs " + shapeStr(parts[0].sizes()));
      }
      parts.push_back(t);
    }
    if (!info[1].IsArray()) invalidArgument("picks must be an array [part, row, part, row, ...]");
    Napi::Array pk = info[1].As<Napi::Array>();
    if (pk.Length() == 0 || pk.Length() % 2 != 0) invalidArgument("picks must hold (part, row) pairs");
    std::vector<std::pair<size_t, int64_t>> picks;
    for (uint32_t i = 0; i < pk.Length(); i += 2) {
      const double p = pk.Get(i).IsNumber() ? pk.Get(i).As<Napi::Number>().DoubleValue() : -1;
      if (!(p >= 0 && p < static_cast<double>(parts.size()) && p == std::floor(p))) invalidArgument("picks: part index out of range");
      const size_t pi = static_cast<size_t>(p);
      const double r = pk.Get(i + 1).IsNumber() ? pk.Get(i + 1).As<Napi::Number>().DoubleValue() : -1;
      if (!(r >= 0 && r < static_cast<double>(parts[pi].size(0)) && r == std::floor(r))) invalidArgument("picks: row index out of range");
      picks.emplace_back(pi, static_cast<int64_t>(r));
    }
    return startJob(info.Env(), info[2], "bia.blackhole.take", [parts, picks](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      std::vector<at::Tensor> rows;
      for (const auto& p : picks) rows.push_back(parts[p.first][p.second]);
      at::Tensor out = at::stack(rows).contiguous();
      synchronize(out.device());
      return tensorResult(out);
    });
  });
}

}  // namespace bia
