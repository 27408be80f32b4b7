#include "ddim.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "errors.h"

namespace bia {

Schedule::Schedule(int64_t T, double betaStart, double betaEnd) {
  alphaBar_.resize(static_cast<size_t>(T));
  double prod = 1.0;
  for (int64_t i = 0; i < T; i++) {
    const double beta = T == 1 ? betaStart : betaStart + (betaEnd - betaStart) * static_cast<double>(i) / static_cast<double>(T - 1);
    prod *= 1.0 - beta;
    alphaBar_[static_cast<size_t>(i)] = prod;
  }
}

std::vector<int64_t> timestepSequence(int64_t t0, int64_t steps) {
  if (t0 < 1 || t0 > 999) invalidArgument("t0 must be in [1, 999], got " + std::to_string(t0));
  if (steps < 2 || steps > t0 + 1) invalidArgument("steps must be in [2, t0 + 1], got " + std::to_string(steps));
  std::vector<int64_t> seq(static_cast<size_t>(steps));
  // The released code's sequence: int(np.linspace(0, 1, steps)[k] * t0). numpy forms linspace as
  // k * (1 / (steps - 1)) with the last element set to 1 exactly; the product with t0 is truncated, so a
  // value that is an integer in exact arithmetic can land one below it (t0 700, 50 steps: 499, not 500).
  const double step = 1.0 / static_cast<double>(steps - 1);
  for (int64_t k = 0; k < steps; k++) {
    const double u = k == steps - 1 ? 1.0 : static_cast<double>(k) * step;
    seq[static_cast<size_t>(k)] = static_cast<int64_t>(u * static_cast<double>(t0));
  }
  return seq;
}

at::Tensor ddimStep(const at::Tensor& x, const at::Tensor& eps, int64_t t, int64_t tNext, const Schedule& s,
                    double eta, const at::Tensor& epsDirection, const at::Tensor& noise) {
  const double at_ = s.alphaBar(t), an = s.alphaBar(tNext);
  at::Tensor x0 = (x - eps * std::sqrt(1.0 - at_)) * (1.0 / std::sqrt(at_));
  const at::Tensor& dir = epsDirection.defined() ? epsDirection : eps;
  if (eta == 0.0) return x0 * std::sqrt(an) + dir * std::sqrt(1.0 - an);
  const double c1 = eta * std::sqrt((1.0 - at_ / an) * (1.0 - an) / (1.0 - at_));
  const double c2 = std::sqrt(std::max(0.0, 1.0 - an - c1 * c1));
  return x0 * std::sqrt(an) + dir * c2 + noise * c1;
}

InjectMode parseInjectMode(const std::string& name) {
  if (name == "lagged") return InjectMode::Lagged;
  if (name == "first-step") return InjectMode::FirstStep;
  if (name == "every-step") return InjectMode::EveryStep;
  if (name == "asyrp") return InjectMode::Asyrp;
  invalidArgument("mode must be one of lagged, first-step, every-step, asyrp; got '" + name + "'");
}

const char* injectModeName(InjectMode m) {
  switch (m) {
    case InjectMode::Lagged: return "lagged";
    case InjectMode::FirstStep: return "first-step";
    case InjectMode::EveryStep: return "every-step";
    case InjectMode::Asyrp: return "asyrp";
  }
  return "?";
}

InjectedEps injectedEps(UNet& unet, const UNetFeatures& f, InjectMode mode, bool first, bool edit, const at::Tensor& h,
                        const at::Tensor& hRef, const at::Tensor& prevH) {
  InjectedEps r;
  switch (mode) {
    case InjectMode::Lagged:
      r.eps = unet->decode(first ? h : prevH, f);
      break;
    case InjectMode::FirstStep:
      r.eps = unet->decode(first ? h : f.h, f);
      break;
    case InjectMode::EveryStep:
      r.eps = unet->decode(edit ? f.h + (h - hRef) : f.h, f);
      break;
    case InjectMode::Asyrp:
      if (edit) {
        r.eps = unet->decode(f.h + (h - hRef), f);  // x̂0 from the edited h
        r.epsDir = unet->decode(f.h, f);            // direction from the unedited h
      } else {
        r.eps = unet->decode(f.h, f);
      }
      break;
  }
  return r;
}

namespace {

at::Tensor timesOf(const at::Tensor& x, int64_t t) {
  return at::full({x.size(0)}, static_cast<double>(t), x.options().dtype(at::kFloat));
}

}  // namespace

InvertResult ddimInvert(UNet& unet, const at::Tensor& x0, int64_t t0, int64_t steps, bool keepAll,
                        const JobContext& ctx) {
  const Schedule s;
  const auto seq = timestepSequence(t0, steps);
  InvertResult r;
  at::Tensor x = x0;
  const int64_t calls = steps - 1;
  for (int64_t k = 0; k + 1 < steps; k++) {
    ctx.checkAbort();
    const int64_t t = seq[static_cast<size_t>(k)], tNext = seq[static_cast<size_t>(k + 1)];
    UNetFeatures f = unet->encode(x, timesOf(x, t));
    at::Tensor eps = unet->decode(f.h, f);
    x = ddimStep(x, eps, t, tNext, s);
    if (keepAll) {
      r.hs.push_back(f.h);
      r.ts.push_back(t);
    }
    r.hR = f.h;
    ctx.progress(static_cast<double>(k + 1), static_cast<double>(calls), "invert");
  }
  if (!keepAll) r.ts.push_back(seq[static_cast<size_t>(steps - 2)]);
  r.xLat = x;
  return r;
}

at::Tensor ddimDecode(UNet& unet, const at::Tensor& xLat, const at::Tensor& h, const DecodeOptions& o,
                      const JobContext& ctx) {
  const Schedule s;
  const auto seq = timestepSequence(o.t0, o.steps);
  const int64_t batch = h.defined() ? h.size(0) : xLat.size(0);
  at::Tensor x = xLat.size(0) == batch ? xLat : xLat.expand({batch, xLat.size(1), xLat.size(2), xLat.size(3)}).contiguous();
  const bool needRef = h.defined() && (o.mode == InjectMode::EveryStep || o.mode == InjectMode::Asyrp);
  if (needRef && !o.hRef.defined()) invalidArgument(std::string("mode '") + injectModeName(o.mode) + "' needs hRef (h_r from the inversion)");
  std::vector<at::Generator> gens;
  if (o.eta > 0 || (o.tBoost > 0 && o.etaBoost > 0)) {
    for (int64_t i = 0; i < batch; i++) {
      gens.push_back(at::make_generator<at::CPUGeneratorImpl>(o.seed + 1000003ULL * static_cast<uint64_t>(o.firstIndex + i)));
    }
  }
  at::Tensor prevH;  // lagged: the unedited h of the previous call
  const int64_t n = static_cast<int64_t>(seq.size());
  // One x_lat for many codes: the first step's encoder pass (and asyrp's unedited decoder pass) is the same for
  // every image, so it runs once, at batch 1, and its features are shared (docs/throughput.md).
  const bool shareFirst = h.defined() && xLat.size(0) == 1 && batch > 1;
  for (int64_t k = n - 1; k >= 0; k--) {
    ctx.checkAbort();
    const int64_t t = seq[static_cast<size_t>(k)];
    const int64_t tNext = k > 0 ? seq[static_cast<size_t>(k - 1)] : -1;
    const bool first = k == n - 1;
    const bool edit = t >= o.tEdit;
    at::Tensor eps, epsDir;
    UNetFeatures f;
    if (first && shareFirst) {
      const UNetFeatures one = unet->encode(xLat, timesOf(xLat, t));
      const auto wide = [batch](const at::Tensor& v) {
        std::vector<int64_t> size = v.sizes().vec();
        size[0] = batch;
        return v.expand(size);
      };
      f.tembAct = wide(one.tembAct);
      for (const auto& s : one.skips) f.skips.push_back(wide(s));
      f.h = wide(one.h);
      if (o.mode == InjectMode::Asyrp && edit) {
        eps = unet->decode(f.h + (h - o.hRef), f);
        epsDir = wide(unet->decode(one.h, one));
      } else {
        InjectedEps r = injectedEps(unet, f, o.mode, first, edit, h, o.hRef, prevH);
        eps = r.eps;
        epsDir = r.epsDir;
      }
      if (o.mode == InjectMode::Lagged) prevH = f.h;
    } else {
      f = unet->encode(x, timesOf(x, t));
      if (!h.defined()) {
        eps = unet->decode(f.h, f);
      } else {
        InjectedEps r = injectedEps(unet, f, o.mode, first, edit, h, o.hRef, prevH);
        eps = r.eps;
        epsDir = r.epsDir;
        if (o.mode == InjectMode::Lagged) prevH = f.h;
      }
    }
    if (o.predictX0 && o.stopAfter > 0 && n - k >= o.stopAfter) {
      const double a = s.alphaBar(t);
      ctx.progress(static_cast<double>(n - k), static_cast<double>(n), "decode");
      return (x - eps * std::sqrt(1.0 - a)) * (1.0 / std::sqrt(a));
    }
    const double eta = t < o.tBoost ? o.etaBoost : o.eta;
    at::Tensor noise;
    if (eta > 0) {
      std::vector<at::Tensor> per;
      for (auto& g : gens) per.push_back(at::randn(x.sizes().slice(1), g, at::TensorOptions().dtype(at::kFloat)));
      noise = at::stack(per).to(x.options());
    }
    x = ddimStep(x, eps, t, tNext, s, eta, epsDir, noise);
    ctx.progress(static_cast<double>(n - k), static_cast<double>(n), "decode");
    if (o.stopAfter > 0 && n - k >= o.stopAfter) break;
  }
  return x;
}

}  // namespace bia
