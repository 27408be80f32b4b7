#include "blackhole_js.h"

#include <cmath>
#include <cstring>
#include <string>

#include "blackhole.h"
#include "device.h"
#include "errors.h"
#include "job.h"
#include "tensor_js.h"

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

}  // namespace

Napi::Value Gram(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor x = codesArg(info[0], "codes");
    return startJob(info.Env(), info[1], "bia.blackhole.gram", [x](JobContext& ctx) -> Finisher {
      return tensorResult(gramMatrix(x, ctx));
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
      return tensorResult(combineCodes(x, c, ctx));
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
      at::Tensor s = signedDistances(x, w, b, single, ctx);
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
      return tensorResult(scaledUnit(w, scale));
    });
  });
}

// Neighbours of h_r (blackhole.h: neighboursOf).
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
      Neighbours r = neighboursOf(hR, targets, n, alphaMax, seed);
      return [r](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("codes", TensorHandle::Wrap(env, r.codes));
        out.Set("alphas", toTypedArray(env, r.alphas));
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
      return tensorResult(offsetRows(base, dir, rows, steps));
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
      return tensorResult(stackRows(parts, picks));
    });
  });
}

}  // namespace bia
