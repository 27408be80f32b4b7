#include "absorb_js.h"

#include <memory>
#include <string>
#include <vector>

#include "absorb.h"
#include "args.h"
#include "device.h"
#include "diffusion_js.h"
#include "errors.h"
#include "identity_js.h"
#include "job.h"
#include "tensor_js.h"
#include "vgg_js.h"

namespace bia {

namespace {

std::string shapeStr(at::IntArrayRef s) { return c10::str(s); }

double finiteOpt(const Napi::Object& o, const char* key, double fallback, double min, double max) {
  const double d = optNumber(o, key, fallback);
  if (d < min || d > max) {
    invalidArgument(std::string(key) + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + std::to_string(d));
  }
  return d;
}

AbsorbOptions parseOptions(Napi::Value v, bool optimize) {
  Napi::Object o = optObject(v, "options");
  AbsorbOptions a;
  a.mode = parseInjectMode(optString(o, "mode", "asyrp"));
  a.t0 = optInt(o, "t0", 500, 1, 999);
  a.steps = optInt(o, "steps", 40, 2, 1000);
  if (a.steps > a.t0 + 1) invalidArgument("steps must be at most t0 + 1");
  a.tEdit = optInt(o, "tEdit", 0, 0, 999);
  if ((a.mode == InjectMode::EveryStep || a.mode == InjectMode::Asyrp) && a.tEdit > a.t0) {
    invalidArgument("tEdit (" + std::to_string(a.tEdit) + ") is above t0 (" + std::to_string(a.t0) + "): mode '" +
                    injectModeName(a.mode) + "' would never inject ĥ");
  }
  const std::string bp = optString(o, "backprop", "full");
  if (bp == "full") a.backprop = Backprop::Full;
  else if (bp == "one-step") a.backprop = Backprop::OneStep;
  else invalidArgument("backprop must be 'full' or 'one-step'; got '" + bp + "'");
  a.tauM = finiteOpt(o, "tauM", a.tauM, -1.0, 1.0);
  a.mu = finiteOpt(o, "mu", a.mu, 0.0, 1e12);
  a.lambdaId = finiteOpt(o, "lambdaId", a.lambdaId, 0.0, 1e12);
  a.lambdaSem = finiteOpt(o, "lambdaSem", a.lambdaSem, 0.0, 1e12);
  a.lambdaPerc = finiteOpt(o, "lambdaPerc", a.lambdaPerc, 0.0, 1e12);
  a.protocol = parseProtocol(optString(o, "protocol", "bia"));
  a.checkpoint = optBool(o, "checkpoint", true);
  a.float64 = optBool(o, "float64", false);
  if (optimize) {
    a.iterations = optInt(o, "iterations", 50, 1, 1000000);
    a.lr = optNumber(o, "lr", 0.01);
    if (!(a.lr > 0)) invalidArgument("lr must be a positive number, got " + std::to_string(a.lr));
    a.startDistance = finiteOpt(o, "startDistance", 0.0, 0.0, std::numeric_limits<double>::max());
  }
  return a;
}

at::Tensor floatingTensor(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) invalidArgument(std::string("tensors.") + key + " is missing");
  at::Tensor t = TensorHandle::From(v, key);
  if (!at::isFloatingType(t.scalar_type())) invalidArgument(std::string(key) + " must be a floating-point tensor, got " + dtypeName(t.scalar_type()));
  return t;
}

// The shapes of the inputs against the model (JS thread; values are checked on the worker).
AbsorbTensors parseTensors(Napi::Value v, const DiffusionState& st, const EncoderState& enc, Protocol protocol) {
  if (!v.IsObject()) invalidArgument("tensors must be an object {xLat, hR, fR, wrap, dq?}");
  Napi::Object o = v.As<Napi::Object>();
  AbsorbTensors t;
  const UNetConfig& c = st.unet->config();
  t.xLat = floatingTensor(o, "xLat");
  const int64_t div = int64_t{1} << (c.levels() - 1);
  if (t.xLat.dim() != 4 || t.xLat.size(0) != 1 || t.xLat.size(1) != c.inChannels || t.xLat.size(2) % div != 0 ||
      t.xLat.size(3) % div != 0 || t.xLat.size(2) < div || t.xLat.size(3) < div) {
    invalidArgument("xLat must be [1, " + std::to_string(c.inChannels) + ", H, W] with H and W multiples of " + std::to_string(div) +
                    ", got " + shapeStr(t.xLat.sizes()));
  }
  if (c.outChannels != c.inChannels) invalidArgument("the absorption needs a UNet whose output channels equal its input channels");
  checkProtocolInput(t.xLat.sizes(), protocol);
  const std::vector<int64_t> code{c.ch * c.chMult.back(), t.xLat.size(2) / div, t.xLat.size(3) / div};
  const std::string codeStr = shapeStr(code);
  t.hR = floatingTensor(o, "hR");
  if (t.hR.dim() != 4 || t.hR.size(0) != 1 || t.hR.sizes().slice(1) != at::IntArrayRef(code)) {
    invalidArgument("hR must be [1, " + codeStr.substr(1) + " (h-space of this model at xLat's size), got " + shapeStr(t.hR.sizes()));
  }
  t.fR = floatingTensor(o, "fR");
  const int64_t d = enc.net->embeddingSize();
  if (t.fR.dim() != 2 || t.fR.size(0) != 1 || t.fR.size(1) != d) {
    invalidArgument("fR must be one embedding [1, " + std::to_string(d) + "] of this encoder, got " + shapeStr(t.fR.sizes()));
  }
  t.wrap = floatingTensor(o, "wrap");
  if (t.wrap.dim() != 4 || t.wrap.sizes().slice(1) != at::IntArrayRef(code)) {
    invalidArgument("wrap must be the wrap set [K, " + codeStr.substr(1) + ", got " + shapeStr(t.wrap.sizes()));
  }
  if (t.wrap.size(0) < 1) invalidArgument("wrap is empty: the wrap set needs K >= 1 codes");
  Napi::Value dq = o.Get("dq");
  if (!dq.IsUndefined() && !dq.IsNull()) {
    t.dq = floatingTensor(o, "dq");
    const bool plain = t.dq.sizes() == at::IntArrayRef(code);
    const bool batched = t.dq.dim() == 4 && t.dq.size(0) == 1 && t.dq.sizes().slice(1) == at::IntArrayRef(code);
    if (!plain && !batched) invalidArgument("dq must be " + codeStr + " or [1, " + codeStr.substr(1) + ", got " + shapeStr(t.dq.sizes()));
  }
  return t;
}

std::shared_ptr<PerceptualNet> parsePerceptual(Napi::Value v) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  return PerceptualHandle::From(v, "perceptual");
}

AbsorbSetup parseSetup(const Napi::CallbackInfo& info, bool optimize) {
  AbsorbSetup s;
  s.diffusion = DiffusionHandle::From(info[0], "diffusion");
  s.encoder = EncoderHandle::From(info[1], "encoder");
  s.perceptual = parsePerceptual(info[2]);
  s.options = parseOptions(info[4], optimize);
  s.tensors = parseTensors(info[3], *s.diffusion, *s.encoder, s.options.protocol);
  return s;
}

Napi::Object historyToJs(Napi::Env env, const std::vector<Evaluation>& h) {
  auto column = [&](double Evaluation::*field) {
    Napi::Float64Array a = Napi::Float64Array::New(env, h.size());
    for (size_t i = 0; i < h.size(); i++) a[i] = h[i].*field;
    return a;
  };
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", column(&Evaluation::loss));
  o.Set("sim", column(&Evaluation::sim));
  o.Set("wrapper", column(&Evaluation::wrapper));
  o.Set("pull", column(&Evaluation::pull));
  o.Set("sem", column(&Evaluation::sem));
  o.Set("mse", column(&Evaluation::mse));
  o.Set("perc", column(&Evaluation::perc));
  return o;
}

}  // namespace

Napi::Value AbsorbLoss(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    AbsorbSetup s = parseSetup(info, false);
    at::Tensor hHat = TensorHandle::From(info[5], "hHat");
    if (!at::isFloatingType(hHat.scalar_type())) invalidArgument("hHat must be a floating-point tensor");
    if (hHat.numel() != s.tensors.hR.numel() || (hHat.sizes() != s.tensors.hR.sizes() && hHat.sizes() != s.tensors.hR.sizes().slice(1))) {
      invalidArgument("hHat must be shaped like hR " + shapeStr(s.tensors.hR.sizes()) + ", got " + shapeStr(hHat.sizes()));
    }
    return startJob(info.Env(), info[6], "bia.absorb.loss", [s, hHat](JobContext& ctx) -> Finisher {
      Evaluation e = absorbLoss(s, hHat, ctx);
      const std::string perceptual = perceptualName(s.perceptual.get());
      const char* backprop = backpropName(s.options.backprop);
      return [e, perceptual, backprop](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("loss", e.loss);
        r.Set("sim", e.sim);
        r.Set("wrapper", e.wrapper);
        r.Set("pull", e.pull);
        r.Set("sem", e.sem);
        r.Set("mse", e.mse);
        r.Set("perc", e.perc);
        r.Set("grad", TensorHandle::Wrap(env, e.grad));
        r.Set("perceptual", perceptual);
        r.Set("backprop", backprop);
        return r;
      };
    });
  });
}

Napi::Value AbsorbOptimize(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    AbsorbSetup s = parseSetup(info, true);
    if (s.options.startDistance > 0 && !s.tensors.dq.defined()) invalidArgument("startDistance > 0 needs dq (the unit direction out of the black hole)");
    return startJob(info.Env(), info[5], "bia.absorb.optimize", [s](JobContext& ctx) -> Finisher {
      AbsorbResult a = absorbOptimize(s, ctx);
      const std::string perceptual = perceptualName(s.perceptual.get());
      const char* backprop = backpropName(s.options.backprop);
      return [a, perceptual, backprop](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("h", TensorHandle::Wrap(env, a.h));
        r.Set("image", TensorHandle::Wrap(env, a.image));
        r.Set("history", historyToJs(env, a.history));
        r.Set("best", static_cast<double>(a.best));
        r.Set("iterations", static_cast<double>(a.history.size()));
        r.Set("perceptual", perceptual);
        r.Set("backprop", backprop);
        r.Set("lr", a.lr);
        return r;
      };
    });
  });
}

}  // namespace bia
