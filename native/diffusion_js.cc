#include "diffusion_js.h"

#include <tuple>

#include "args.h"
#include "device.h"
#include "errors.h"
#include "job.h"
#include "tensor_js.h"

namespace bia {

namespace {

std::vector<int64_t> intArray(Napi::Value v, const char* what) {
  if (!v.IsArray()) invalidArgument(std::string(what) + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) invalidArgument(std::string(what) + " must be an array of integers");
    const double d = e.As<Napi::Number>().DoubleValue();
    if (d != static_cast<double>(static_cast<int64_t>(d))) invalidArgument(std::string(what) + " must be an array of integers");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

Napi::Object configToJs(Napi::Env env, const UNetConfig& c) {
  auto arr = [&](const std::vector<int64_t>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); i++) a.Set(static_cast<uint32_t>(i), static_cast<double>(v[i]));
    return a;
  };
  Napi::Object o = Napi::Object::New(env);
  o.Set("inChannels", static_cast<double>(c.inChannels));
  o.Set("outChannels", static_cast<double>(c.outChannels));
  o.Set("ch", static_cast<double>(c.ch));
  o.Set("chMult", arr(c.chMult));
  o.Set("numResBlocks", static_cast<double>(c.numResBlocks));
  o.Set("attnResolutions", arr(c.attnResolutions));
  o.Set("dropout", c.dropout);
  o.Set("resampWithConv", c.resampWithConv);
  o.Set("resolution", static_cast<double>(c.resolution));
  o.Set("hShape", arr(c.hShape()));
  return o;
}

// An optional tensor option o[key] (undefined: none).
at::Tensor optTensor(const Napi::Object& o, const char* key) {
  return o.Has(key) && !o.Get(key).IsUndefined() ? TensorHandle::From(o.Get(key), key) : at::Tensor();
}

// (device, dtype, channelsLast, autocast) at info[first..first+3]
DiffusionOptions parseModelOptions(const Napi::CallbackInfo& info, size_t first) {
  DiffusionOptions m;
  std::tie(m.device, m.dtype) = modelPlacementFromJs(info[first], info[first + 1], "the model dtype");
  m.channelsLast = info[first + 2].ToBoolean();
  if (info[first + 3].IsString()) {
    m.autocast = parseDtype(info[first + 3].As<Napi::String>());
    if (*m.autocast != at::kHalf && *m.autocast != at::kBFloat16) invalidArgument("autocast must be float16 or bfloat16");
  }
  return m;
}

using State = std::shared_ptr<DiffusionState>;

}  // namespace

void DiffusionHandle::load(DiffusionState& s, const StateDict& entries, bool strict) {
  loadStateDictInto(*s.unet, entries, strict);
  s.refreshCopies();
}

namespace {

Napi::Value config(Napi::Env env, const State& st) { return configToJs(env, st->unet->config()); }

Napi::Value forward(const Napi::CallbackInfo& info, const State& st) {
  const UNetConfig& c = st->unet->config();
  at::Tensor x = TensorHandle::From(info[0], "x");
  checkImage(x, c, "x");
  std::vector<int64_t> ts = intArray(info[1], "t");
  if (ts.size() != 1 && static_cast<int64_t>(ts.size()) != x.size(0)) invalidArgument("t must have 1 or B entries");
  for (int64_t t : ts) if (t < 0 || t > 999) invalidArgument("t must be in [0, 999], got " + std::to_string(t));
  Napi::Object o = optObject(info[2], "options");
  at::Tensor hReplace = optTensor(o, "h"), hDelta = optTensor(o, "hDelta");
  if (hReplace.defined()) checkH(hReplace, c, x.size(2), x.size(3), "h");
  if (hDelta.defined()) checkH(hDelta, c, x.size(2), x.size(3), "hDelta");
  return startJob(info.Env(), info[3], "bia.diffusion.forward", [st, x, ts, hReplace, hDelta](JobContext&) -> Finisher {
    ForwardResult f = diffusionForward(*st, x, ts, hReplace, hDelta);
    return [f](Napi::Env env) -> Napi::Value {
      Napi::Object r = Napi::Object::New(env);
      r.Set("eps", TensorHandle::Wrap(env, f.eps));
      r.Set("h", TensorHandle::Wrap(env, f.h));
      return r;
    };
  });
}

Napi::Value invert(const Napi::CallbackInfo& info, const State& st) {
  at::Tensor x = TensorHandle::From(info[0], "x");
  checkImage(x, st->unet->config(), "x");
  Napi::Object o = optObject(info[1], "options");
  const int64_t t0 = optInt(o, "t0", 500, 1, 999);
  const int64_t steps = optInt(o, "steps", 40, 2, 1000);
  if (steps > t0 + 1) invalidArgument("steps must be at most t0 + 1");
  const bool keepAll = optBool(o, "keepAll", false);
  return startJob(info.Env(), info[2], "bia.diffusion.invert", [st, x, t0, steps, keepAll](JobContext& ctx) -> Finisher {
    InvertResult r = diffusionInvert(*st, x, t0, steps, keepAll, ctx);
    return [r](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("xLat", TensorHandle::Wrap(env, r.xLat));
      out.Set("hR", TensorHandle::Wrap(env, r.hR));
      Napi::Array all = Napi::Array::New(env, r.hs.size());
      for (size_t i = 0; i < r.hs.size(); i++) all.Set(static_cast<uint32_t>(i), TensorHandle::Wrap(env, r.hs[i]));
      out.Set("hs", all);
      Napi::Array t = Napi::Array::New(env, r.ts.size());
      for (size_t i = 0; i < r.ts.size(); i++) t.Set(static_cast<uint32_t>(i), static_cast<double>(r.ts[i]));
      out.Set("ts", t);
      return out;
    };
  });
}

Napi::Value decode(const Napi::CallbackInfo& info, const State& st) {
  const UNetConfig& c = st->unet->config();
  at::Tensor xLat = TensorHandle::From(info[0], "xLat");
  checkImage(xLat, c, "xLat");
  at::Tensor h;
  if (!info[1].IsUndefined() && !info[1].IsNull()) {
    h = TensorHandle::From(info[1], "h");
    checkH(h, c, xLat.size(2), xLat.size(3), "h");
    if (xLat.size(0) != 1 && xLat.size(0) != h.size(0)) invalidArgument("xLat must have batch 1 or the batch of h");
  }
  Napi::Object o = optObject(info[2], "options");
  DecodeOptions d;
  d.mode = parseInjectMode(optString(o, "mode", "asyrp"));
  d.eta = optNumber(o, "eta", d.mode == InjectMode::Lagged ? 1.0 : 0.0);
  if (d.eta < 0 || d.eta > 1) invalidArgument("eta must be in [0, 1]");
  d.t0 = optInt(o, "t0", 500, 1, 999);
  d.steps = optInt(o, "steps", 40, 2, 1000);
  if (d.steps > d.t0 + 1) invalidArgument("steps must be at most t0 + 1");
  d.tEdit = optInt(o, "tEdit", 0, 0, 999);
  d.tBoost = optInt(o, "tBoost", 0, 0, 1000);
  d.etaBoost = optNumber(o, "etaBoost", 1.0);
  if (d.etaBoost < 0 || d.etaBoost > 1) invalidArgument("etaBoost must be in [0, 1]");
  d.stopAfter = optInt(o, "stopAfter", 0, 0, 1000);
  d.predictX0 = optBool(o, "predictX0", false);
  if (d.predictX0 && d.stopAfter == 0) invalidArgument("predictX0 needs stopAfter > 0 (the step whose x̂0 is returned)");
  d.seed = static_cast<uint64_t>(optInt(o, "seed", 909090, 0, int64_t{1} << 52));
  const int64_t batchSize = optInt(o, "batchSize", 16, 1, 4096);
  d.hRef = optTensor(o, "hRef");
  if (d.hRef.defined()) {
    checkH(d.hRef, c, xLat.size(2), xLat.size(3), "hRef");
    if (d.hRef.size(0) != 1 && (!h.defined() || d.hRef.size(0) != h.size(0))) invalidArgument("hRef must have batch 1 or the batch of h");
  }
  return startJob(info.Env(), info[3], "bia.diffusion.decode", [st, xLat, h, d, batchSize](JobContext& ctx) -> Finisher {
    return tensorResult(diffusionDecode(*st, xLat, h, d, batchSize, ctx));
  });
}

}  // namespace

std::vector<DiffusionHandle::Property> DiffusionHandle::properties() {
  return ModelProperties({Getter<&config>("config")},
                         {AsyncMethod<&forward>("forward"), AsyncMethod<&invert>("invert"), AsyncMethod<&decode>("decode"), SaveMethod()});
}

void DiffusionHandle::describe(const DiffusionState& s, std::map<std::string, std::string>& metadata) {
  metadata[kUNetConfigKey] = unetConfigToJson(s.unet->config());
  metadata["format"] = "pt";
}

UNetConfig unetConfigFromJs(Napi::Value v) {
  if (v.IsString()) return unetPreset(v.As<Napi::String>());
  Napi::Object o = optObject(v, "config");
  UNetConfig c = o.Has("preset") ? unetPreset(optString(o, "preset", "")) : UNetConfig{};
  c.inChannels = optInt(o, "inChannels", c.inChannels, 1, 64);
  c.outChannels = optInt(o, "outChannels", c.outChannels, 1, 64);
  c.ch = optInt(o, "ch", c.ch, 1, 4096);
  if (o.Has("chMult")) c.chMult = intArray(o.Get("chMult"), "chMult");
  c.numResBlocks = optInt(o, "numResBlocks", c.numResBlocks, 1, 16);
  if (o.Has("attnResolutions")) c.attnResolutions = intArray(o.Get("attnResolutions"), "attnResolutions");
  c.dropout = optNumber(o, "dropout", c.dropout);
  c.resampWithConv = optBool(o, "resampWithConv", c.resampWithConv);
  c.resolution = optInt(o, "resolution", c.resolution, 1, 1 << 16);
  c.validate();
  return c;
}

Napi::Value LoadDiffusion(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathFromJs(info[0]);
    std::optional<UNetConfig> config;
    if (!info[1].IsUndefined() && !info[1].IsNull()) config = unetConfigFromJs(info[1]);
    DiffusionOptions m = parseModelOptions(info, 2);
    const bool strict = info[6].IsUndefined() ? true : info[6].ToBoolean().Value();
    return startJob(info.Env(), info[7], "bia.diffusion.load", [path, config, m, strict](JobContext& ctx) -> Finisher {
      auto st = loadDiffusion(path, config, m, strict, ctx);
      return [st](Napi::Env env) -> Napi::Value { return DiffusionHandle::Wrap(env, st); };
    });
  });
}

Napi::Value CreateDiffusion(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    UNetConfig c = unetConfigFromJs(info[0]);
    if (!info[1].IsNumber()) invalidArgument("seed must be a number");
    const uint64_t seed = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    DiffusionOptions m = parseModelOptions(info, 2);
    return startJob(info.Env(), info[6], "bia.diffusion.create", [c, seed, m](JobContext&) -> Finisher {
      auto st = createDiffusion(c, seed, m);
      return [st](Napi::Env env) -> Napi::Value { return DiffusionHandle::Wrap(env, st); };
    });
  });
}

Napi::Value DiffusionPreset(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsString()) invalidArgument("preset must be a string");
    return configToJs(info.Env(), unetPreset(info[0].As<Napi::String>()));
  });
}

}  // namespace bia
