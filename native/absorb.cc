#include "absorb.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <optional>

#include "autocast.h"
#include "device.h"
#include "errors.h"

namespace bia {

const char* backpropName(Backprop b) { return b == Backprop::Full ? "full" : "one-step"; }

namespace {

// Worker thread: NaN / Inf anywhere is the caller's mistake.
void requireFinite(const at::Tensor& t, const char* what) {
  if (!at::isfinite(t).all().item<bool>()) invalidArgument(std::string(what) + " contains NaN or Inf");
}

// A float64 copy of a module's weights (tests: finite differences need double precision).
void copyWeights(torch::nn::Module& dst, const torch::nn::Module& src, at::ScalarType dtype) {
  torch::NoGradGuard noGrad;
  auto params = src.named_parameters(true);
  for (auto& p : dst.named_parameters(true)) p.value().set_data(params[p.key()].to(p.value().device(), dtype));
  auto buffers = src.named_buffers(true);
  for (auto& b : dst.named_buffers(true)) {
    const at::Tensor& s = buffers[b.key()];
    b.value().set_data(s.is_floating_point() ? s.to(b.value().device(), dtype) : s.to(b.value().device()));
  }
}

// What one DDIM step hands on: the next state and, for `lagged`, the unedited h it computed.
struct StepOut {
  at::Tensor x;
  at::Tensor h;
};

// The value of every term of L at one ĥ (0-dim tensors in the loss dtype).
struct Terms {
  at::Tensor loss, sim, wrapper, pull, sem, mse, perc;
};

// Everything Dec(·) and L need, prepared once per job on the compute thread.
class Absorber {
 public:
  Absorber(const DiffusionState& st, const EncoderState& enc, std::shared_ptr<PerceptualNet> perceptual, const AbsorbTensors& in,
           const AbsorbOptions& o)
      : o_(o), seq_(timestepSequence(o.t0, o.steps)), perceptual_(std::move(perceptual)) {
    device_ = st.device;
    autocast_ = st.torchAutocast();
    lossDtype_ = o.float64 ? at::kDouble : at::kFloat;
    if (o.float64) {
      unet_ = UNet(st.unet->config());
      unet_->eval();
      unet_->to(st.device, at::kDouble);
      copyWeights(*unet_, *st.unet, at::kDouble);
      modelDtype_ = at::kDouble;
      channelsLast_ = false;
      autocast_.reset();
      encNet_ = makeIdentityNet(enc.arch, enc.width, enc.net->embeddingSize());
      encNet_->module().eval();
      encNet_->module().to(enc.device);
      copyWeights(encNet_->module(), enc.net->module(), at::kDouble);
      encDtype_ = at::kDouble;
    } else {
      unet_ = st.unet;
      modelDtype_ = st.dtype;
      channelsLast_ = st.channelsLast;
      encNet_ = enc.net;
      encDtype_ = enc.dtype;
    }
    encDevice_ = enc.device;
    inputScale_ = enc.inputScale;
    inputShift_ = enc.inputShift;

    // Inputs may be inference tensors from earlier jobs: clone them into ordinary ones.
    requireFinite(in.xLat, "xLat");
    requireFinite(in.hR, "hR");
    requireFinite(in.fR, "fR");
    requireFinite(in.wrap, "wrap");
    if (in.dq.defined()) requireFinite(in.dq, "dq");
    xLat_ = toModel(in.xLat.clone());
    hR_ = in.hR.to(device_, lossDtype_).clone();
    hRModel_ = toModel(hR_);
    const double hNorm = hR_.norm().item<double>();
    if (!(hNorm > 0)) invalidArgument("hR is zero: the pull term is relative to ‖h_r‖²");
    hRNorm2_ = hNorm * hNorm;
    hRNorm_ = hNorm;
    const double fNorm = in.fR.to(at::kDouble).norm().item<double>();
    if (!(fNorm > 0)) invalidArgument("fR is zero: it must be an identity embedding");
    fR_ = l2normalize(in.fR.to(device_, lossDtype_).clone());
    wrap_ = in.wrap.to(device_, lossDtype_).clone().flatten(1);
    if (in.dq.defined()) dq_ = in.dq.to(device_, lossDtype_).reshape(hR_.sizes()).clone();

    if (o.backprop == Backprop::OneStep) {
      torch::NoGradGuard noGrad;
      AutocastGuard ac(device_, autocast_);
      f0_ = unet_->encode(xLat_, timesOf(xLat_, seq_.back()));
    }
  }

  const at::Tensor& hR() const { return hR_; }
  double hRNorm() const { return hRNorm_; }
  const at::Tensor& dq() const { return dq_; }
  at::ScalarType lossDtype() const { return lossDtype_; }
  int64_t steps() const { return static_cast<int64_t>(seq_.size()); }

  // x_ref = Dec(h_r), once, without a graph (the one-step prediction in `one-step` mode).
  void prepareReference(const JobContext& ctx) {
    torch::NoGradGuard noGrad;
    at::Tensor x = o_.backprop == Backprop::OneStep ? oneStep(hRModel_) : decode(hR_, ctx);
    xRef_ = x.to(lossDtype_);
  }

  // The full DDIM decoding (η = 0) with ĥ injected, without a graph: the same arithmetic as
  // ddimDecode, so Dec's forward equals DiffusionModel.decode with η = 0.
  at::Tensor decode(const at::Tensor& hHat, const JobContext& ctx, std::vector<at::Tensor>* xs = nullptr,
                    std::vector<at::Tensor>* prevHs = nullptr) {
    torch::NoGradGuard noGrad;
    const at::Tensor hm = toModel(hHat);
    at::Tensor x = xLat_, prevH;
    for (int64_t k = steps() - 1; k >= 0; k--) {
      ctx.checkAbort();
      if (xs) (*xs)[k] = x;
      if (prevHs) (*prevHs)[k] = prevH;
      StepOut out = step(x, hm, prevH, k);
      x = out.x;
      prevH = out.h;
    }
    return x;
  }

  // L and ∂L/∂ĥ at ĥ (loss dtype, shaped like h_r).
  Evaluation evaluate(const at::Tensor& hHat, const JobContext& ctx) {
    if (o_.backprop == Backprop::OneStep) return evaluateOneStep(hHat);
    return o_.checkpoint ? evaluateCheckpointed(hHat, ctx) : evaluateUnrolled(hHat, ctx);
  }

 private:
  static at::Tensor timesOf(const at::Tensor& x, int64_t t) {
    return at::full({x.size(0)}, static_cast<double>(t), x.options().dtype(at::kFloat));
  }

  // Any tensor → the model's device, dtype and memory format (differentiable).
  at::Tensor toModel(const at::Tensor& t) const {
    at::Tensor r = t.to(device_, modelDtype_);
    return channelsLast_ && r.dim() == 4 ? r.contiguous(at::MemoryFormat::ChannelsLast) : r.contiguous();
  }

  // One DDIM step at seq[k] (decoding runs k = n−1 … 0), η = 0, with ĥ (model form) injected as
  // the mode says; prevH is the previous step's unedited h (lagged). The same step as ddimDecode's.
  StepOut step(const at::Tensor& x, const at::Tensor& hm, const at::Tensor& prevH, int64_t k) {
    AutocastGuard ac(device_, autocast_);
    const int64_t n = steps();
    const int64_t t = seq_[static_cast<size_t>(k)];
    const int64_t tNext = k > 0 ? seq_[static_cast<size_t>(k - 1)] : -1;
    const bool first = k == n - 1;
    UNetFeatures f = unet_->encode(x, timesOf(x, t));
    StepOut out;
    InjectedEps r = injectedEps(unet_, f, o_.mode, first, t >= o_.tEdit, hm, hRModel_, prevH);
    if (o_.mode == InjectMode::Lagged) out.h = f.h;
    out.x = ddimStep(x, r.eps, t, tNext, schedule_, 0.0, r.epsDir);
    return out;
  }

  // Asyrp's P_t: x̂0 of one UNet call at t0 on x_lat with ĥ injected (the encoder half is fixed).
  at::Tensor oneStep(const at::Tensor& hm) {
    AutocastGuard ac(device_, autocast_);
    const int64_t t = seq_.back();
    at::Tensor h = (o_.mode == InjectMode::Lagged || o_.mode == InjectMode::FirstStep) ? hm : f0_.h + (hm - hRModel_);
    at::Tensor eps = unet_->decode(h, f0_);
    const double a = schedule_.alphaBar(t);
    return (xLat_ - eps * std::sqrt(1.0 - a)) * (1.0 / std::sqrt(a));
  }

  // L at (x̂ = Dec(ĥ), ĥ); differentiable in both.
  Terms terms(const at::Tensor& x0, const at::Tensor& hHat) {
    Terms r;
    at::Tensor x = x0.to(lossDtype_);
    // The identity encoder's input exactly as EncoderHandle::Embed prepares it.
    at::Tensor xe = x.to(encDevice_, encDtype_);
    if (inputScale_ != 1.0 || inputShift_ != 0.0) xe = xe * inputScale_ + inputShift_;
    at::Tensor e = l2normalize(encNet_->forward(preprocess(xe, o_.protocol)).to(device_, lossDtype_));
    r.sim = (e * fR_).sum();
    r.pull = (hHat.reshape({1, -1}) - wrap_).pow(2).sum(1).min() * (1.0 / hRNorm2_);
    r.wrapper = at::relu(r.sim - o_.tauM) * o_.lambdaId + r.pull * o_.mu;
    r.mse = (x - xRef_).pow(2).mean();
    r.perc = perceptualLoss(x, xRef_, perceptual_.get()).mean().to(lossDtype_);
    r.sem = r.mse + r.perc * o_.lambdaPerc;
    r.loss = r.wrapper + r.sem * o_.lambdaSem;
    return r;
  }

  static Evaluation values(const Terms& t, at::Tensor grad) {
    Evaluation e;
    e.loss = t.loss.item<double>();
    e.sim = t.sim.item<double>();
    e.wrapper = t.wrapper.item<double>();
    e.pull = t.pull.item<double>();
    e.sem = t.sem.item<double>();
    e.mse = t.mse.item<double>();
    e.perc = t.perc.item<double>();
    e.grad = std::move(grad);
    return e;
  }

  static at::Tensor orZeros(const at::Tensor& g, const at::Tensor& like) { return g.defined() ? g : at::zeros_like(like); }

  Evaluation evaluateOneStep(const at::Tensor& hHat) {
    torch::AutoGradMode grad(true);
    at::Tensor h = hHat.detach().requires_grad_(true);
    Terms t = terms(oneStep(toModel(h)), h);
    auto g = torch::autograd::grad({t.loss}, {h}, {}, false, false, true);
    return values(t, orZeros(g[0], h));
  }

  // Plain autograd through the whole unrolled decode (every step's activations alive): the
  // reference the checkpointed pass must equal.
  Evaluation evaluateUnrolled(const at::Tensor& hHat, const JobContext& ctx) {
    torch::AutoGradMode grad(true);
    at::Tensor h = hHat.detach().requires_grad_(true);
    const at::Tensor hm = toModel(h);
    at::Tensor x = xLat_, prevH;
    for (int64_t k = steps() - 1; k >= 0; k--) {
      ctx.checkAbort();
      StepOut out = step(x, hm, prevH, k);
      x = out.x;
      prevH = out.h;
    }
    Terms t = terms(x, h);
    auto g = torch::autograd::grad({t.loss}, {h}, {}, false, false, true);
    return values(t, orZeros(g[0], h));
  }

  // Gradient checkpointing by hand: a graph-free forward keeps only the state entering each
  // step (and, for lagged, the h it receives); then the steps are recomputed one at a time, last
  // first, each with a graph, and ∂L/∂x_t (and ∂L/∂prevH) are carried backwards while ∂L/∂ĥ
  // accumulates. The encoder half is recomputed too: x_t depends on ĥ through earlier steps.
  Evaluation evaluateCheckpointed(const at::Tensor& hHat, const JobContext& ctx) {
    const int64_t n = steps();
    const bool lagged = o_.mode == InjectMode::Lagged;
    std::vector<at::Tensor> xs(static_cast<size_t>(n)), prevHs(static_cast<size_t>(n));
    const at::Tensor x0 = decode(hHat, ctx, &xs, lagged ? &prevHs : nullptr);

    Terms t;
    at::Tensor gx, gh;
    {
      torch::AutoGradMode grad(true);
      at::Tensor xLeaf = x0.detach().requires_grad_(true);
      at::Tensor h = hHat.detach().requires_grad_(true);
      t = terms(xLeaf, h);
      auto g = torch::autograd::grad({t.loss}, {xLeaf, h}, {}, false, false, true);
      gx = g[0];
      gh = orZeros(g[1], h);
      t = Terms{t.loss.detach(), t.sim.detach(), t.wrapper.detach(), t.pull.detach(), t.sem.detach(), t.mse.detach(), t.perc.detach()};
    }
    at::Tensor gPrev;  // ∂L/∂(the unedited h that the step processed next hands on), lagged
    for (int64_t k = 0; k < n; k++) {
      ctx.checkAbort();
      torch::AutoGradMode grad(true);
      const bool first = k == n - 1;  // x_lat is a constant
      at::Tensor xIn = first ? xs[k] : xs[k].detach().requires_grad_(true);
      at::Tensor prevIn = prevHs[k].defined() ? prevHs[k].detach().requires_grad_(true) : at::Tensor();
      at::Tensor h = hHat.detach().requires_grad_(true);
      StepOut out = step(xIn, toModel(h), prevIn, k);
      std::vector<at::Tensor> outputs, gradOutputs;
      if (gx.defined() && out.x.requires_grad()) {
        outputs.push_back(out.x);
        gradOutputs.push_back(gx);
      }
      if (gPrev.defined() && out.h.defined() && out.h.requires_grad()) {
        outputs.push_back(out.h);
        gradOutputs.push_back(gPrev);
      }
      std::vector<at::Tensor> inputs{h};
      const int64_t ix = xIn.requires_grad() ? static_cast<int64_t>(inputs.size()) : -1;
      if (ix >= 0) inputs.push_back(xIn);
      const int64_t ip = prevIn.defined() ? static_cast<int64_t>(inputs.size()) : -1;
      if (ip >= 0) inputs.push_back(prevIn);
      if (outputs.empty()) {
        gx = at::Tensor();
        gPrev = at::Tensor();
        continue;
      }
      auto g = torch::autograd::grad(outputs, inputs, gradOutputs, false, false, true);
      if (g[0].defined()) gh = gh + g[0];
      gx = ix >= 0 ? g[static_cast<size_t>(ix)] : at::Tensor();
      gPrev = ip >= 0 ? g[static_cast<size_t>(ip)] : at::Tensor();
    }
    return values(t, gh);
  }

  AbsorbOptions o_;
  std::vector<int64_t> seq_;
  Schedule schedule_;
  std::shared_ptr<PerceptualNet> perceptual_;
  UNet unet_{nullptr};
  c10::Device device_{c10::kCPU};
  at::ScalarType modelDtype_ = at::kFloat;
  bool channelsLast_ = false;
  std::optional<at::ScalarType> autocast_;
  std::shared_ptr<IdentityNet> encNet_;
  c10::Device encDevice_{c10::kCPU};
  at::ScalarType encDtype_ = at::kFloat;
  double inputScale_ = 1.0, inputShift_ = 0.0;
  at::ScalarType lossDtype_ = at::kFloat;
  at::Tensor xLat_, hR_, hRModel_, fR_, wrap_, dq_, xRef_;
  double hRNorm_ = 0, hRNorm2_ = 0;
  UNetFeatures f0_;
};

}  // namespace

Evaluation absorbLoss(const AbsorbSetup& s, const at::Tensor& hHat, const JobContext& ctx) {
  requireFinite(hHat, "hHat");
  Absorber a(*s.diffusion, *s.encoder, s.perceptual, s.tensors, s.options);
  a.prepareReference(ctx);
  Evaluation e = a.evaluate(hHat.to(a.hR().device(), a.lossDtype()).reshape(a.hR().sizes()).clone(), ctx);
  e.grad = e.grad.reshape(hHat.sizes()).contiguous();
  synchronize(e.grad.device());
  return e;
}

// Adam on ĥ (β 0.9 / 0.999, ε 1e-8). The learning rate is relative: each coordinate moves by
// about lr·RMS(h_r) = lr·‖h_r‖/√numel per iteration, i.e. ĥ moves by up to lr·‖h_r‖ per
// iteration in norm (50 iterations at 0.01: up to half of ‖h_r‖). `iterations` evaluations of L
// and ∂L/∂ĥ, with an Adam step between consecutive ones; the evaluated ĥ of lowest L is kept.
AbsorbResult absorbOptimize(const AbsorbSetup& s, const JobContext& ctx) {
  const AbsorbOptions& o = s.options;
  Absorber a(*s.diffusion, *s.encoder, s.perceptual, s.tensors, o);
  at::Tensor h = a.hR().clone();
  if (o.startDistance > 0) {
    const double dn = a.dq().norm().item<double>();
    if (!(dn > 0)) invalidArgument("dq is zero: it must be a direction");
    h = h + a.dq() * (o.startDistance / dn);
  }
  a.prepareReference(ctx);
  const double lr = o.lr * a.hRNorm() / std::sqrt(static_cast<double>(h.numel()));
  const double b1 = 0.9, b2 = 0.999, adamEps = 1e-8;
  at::Tensor m = at::zeros_like(h), v = at::zeros_like(h);
  std::vector<Evaluation> history;
  at::Tensor best;
  double bestLoss = std::numeric_limits<double>::infinity();
  int64_t bestIndex = -1;
  for (int64_t i = 0; i < o.iterations; i++) {
    ctx.checkAbort();
    Evaluation e = a.evaluate(h, ctx);
    if (!std::isfinite(e.loss) || !at::isfinite(e.grad).all().item<bool>()) {
      if (i == 0) throw BiaError(ErrorCode::Other, "the absorption loss or its gradient is not finite at the start point");
      ctx.progress(static_cast<double>(o.iterations), static_cast<double>(o.iterations), "absorb", bestLoss);
      break;  // keep what was found so far
    }
    if (e.loss < bestLoss) {
      bestLoss = e.loss;
      bestIndex = i;
      best = h.clone();
    }
    const at::Tensor g = e.grad;
    e.grad = at::Tensor();
    history.push_back(e);
    ctx.progress(static_cast<double>(i + 1), static_cast<double>(o.iterations), "absorb", e.loss);
    if (i + 1 == o.iterations) break;
    torch::NoGradGuard noGrad;
    const double step = static_cast<double>(i + 1);
    m.mul_(b1).add_(g, 1 - b1);
    v.mul_(b2).addcmul_(g, g, 1 - b2);
    const at::Tensor mHat = m / (1 - std::pow(b1, step));
    const at::Tensor vHat = v / (1 - std::pow(b2, step));
    h = h - mHat / (vHat.sqrt() + adamEps) * lr;
  }
  ctx.checkAbort();
  // The output image with the full decode (whatever the backprop mode).
  at::Tensor image = a.decode(best, ctx).to(at::kFloat).contiguous();
  at::Tensor hOut = best.to(at::kFloat).contiguous();
  synchronize(image.device());
  return {hOut, image, history, bestIndex, lr};
}

}  // namespace bia
