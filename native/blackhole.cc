#include "blackhole.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <string>

#include "device.h"
#include "errors.h"

namespace bia {

namespace {

// Refuse NaN/Inf, naming the first bad row of a [n, d] view.
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

// ‖w‖ of a normal, which must be positive.
double normOf(const at::Tensor& w) {
  const double norm = w.norm().item<double>();
  if (!(norm > 0)) invalidArgument("w is zero: a boundary normal must have a positive norm");
  return norm;
}

}  // namespace

at::Tensor gramMatrix(const at::Tensor& x, const JobContext& ctx) {
  c10::InferenceMode guard;
  at::Tensor X = flatRows(x);
  requireFinite(X, "codes");
  ctx.checkAbort();
  at::Tensor K = at::mm(X, X.t());
  // Exactly symmetric (it already is unless the BLAS blocks the two triangles differently).
  return ((K + K.t()) * 0.5).to(at::kCPU).contiguous();
}

at::Tensor combineCodes(const at::Tensor& x, const at::Tensor& c, const JobContext& ctx) {
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
  return w;
}

at::Tensor signedDistances(const at::Tensor& x, const at::Tensor& w, double b, bool single, const JobContext& ctx) {
  c10::InferenceMode guard;
  at::Tensor X = single ? x.reshape({1, -1}).to(at::kDouble) : flatRows(x);
  at::Tensor wv = w.reshape({-1}).to(X.device(), at::kDouble);
  requireFinite(wv, "w");
  requireFinite(X, "codes");
  const double norm = normOf(wv);
  ctx.checkAbort();
  return ((at::mv(X, wv) + b) / norm).to(at::kCPU).contiguous();
}

at::Tensor scaledUnit(const at::Tensor& w, double scale) {
  c10::InferenceMode guard;
  at::Tensor wd = w.to(at::kDouble);
  requireFinite(wd, "w");
  at::Tensor r = (wd * (scale / normOf(wd))).contiguous();
  synchronize(r.device());
  return r;
}

Neighbours neighboursOf(const at::Tensor& hR, const at::Tensor& targets, int64_t n, double alphaMax, uint64_t seed) {
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
  return {codes, alphas.contiguous()};
}

at::Tensor offsetRows(const at::Tensor& base, const at::Tensor& direction, const std::vector<int64_t>& rows,
                      const std::vector<double>& steps) {
  c10::InferenceMode guard;
  at::Tensor idx = at::tensor(rows, at::TensorOptions().dtype(at::kLong)).to(base.device());
  at::Tensor out = base.index_select(0, idx);
  if (direction.defined()) {
    std::vector<int64_t> sshape(static_cast<size_t>(out.dim()), 1);
    sshape[0] = static_cast<int64_t>(steps.size());
    at::Tensor st = at::tensor(steps, at::TensorOptions().dtype(at::kDouble)).reshape(sshape).to(base.device());
    out = (out.to(at::kDouble) + st * direction.to(base.device(), at::kDouble).unsqueeze(0)).to(base.scalar_type());
  }
  out = out.contiguous();
  synchronize(out.device());
  return out;
}

at::Tensor stackRows(const std::vector<at::Tensor>& parts, const std::vector<std::pair<size_t, int64_t>>& picks) {
  c10::InferenceMode guard;
  std::vector<at::Tensor> rows;
  for (const auto& p : picks) rows.push_back(parts[p.first][p.second]);
  at::Tensor out = at::stack(rows).contiguous();
  synchronize(out.device());
  return out;
}

}  // namespace bia
