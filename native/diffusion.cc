#include "diffusion.h"

#include <c10/core/InferenceMode.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "addon_data.h"
#include "args.h"
#include "autocast.h"
#include "checkpoint.h"
#include "ddim.h"
#include "device.h"
#include "errors.h"
#include "job.h"
#include "module_io.h"
#include "tensor.h"

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

}  // namespace

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

namespace {

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

std::string shapeStr(at::IntArrayRef s) { return c10::str(s); }

}  // namespace

std::string unetConfigToJson(const UNetConfig& c) {
  nlohmann::json j = {{"inChannels", c.inChannels}, {"outChannels", c.outChannels}, {"ch", c.ch},
                      {"chMult", c.chMult}, {"numResBlocks", c.numResBlocks}, {"attnResolutions", c.attnResolutions},
                      {"dropout", c.dropout}, {"resampWithConv", c.resampWithConv}, {"resolution", c.resolution}};
  return j.dump();
}

UNetConfig unetConfigFromJson(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    UNetConfig c;
    c.inChannels = j.at("inChannels").get<int64_t>();
    c.outChannels = j.at("outChannels").get<int64_t>();
    c.ch = j.at("ch").get<int64_t>();
    c.chMult = j.at("chMult").get<std::vector<int64_t>>();
    c.numResBlocks = j.at("numResBlocks").get<int64_t>();
    c.attnResolutions = j.at("attnResolutions").get<std::vector<int64_t>>();
    c.dropout = j.value("dropout", 0.0);
    c.resampWithConv = j.value("resampWithConv", true);
    c.resolution = j.at("resolution").get<int64_t>();
    c.validate();
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw BiaError(ErrorCode::Checkpoint, std::string("the checkpoint's ") + kUNetConfigKey + " metadata is not a UNet config: " + e.what());
  }
}

namespace {

// x must be [B, inCh, H, W] with H, W divisible by 2^(levels-1), and finite.
void checkImage(const at::Tensor& x, const UNetConfig& c, const char* what) {
  if (x.dim() != 4) invalidArgument(std::string(what) + " must be [B, C, H, W], got " + shapeStr(x.sizes()));
  if (x.size(0) < 1) invalidArgument(std::string(what) + " has an empty batch");
  if (x.size(1) != c.inChannels) {
    invalidArgument(std::string(what) + " has " + std::to_string(x.size(1)) + " channels; the model takes " + std::to_string(c.inChannels));
  }
  const int64_t div = int64_t{1} << (c.levels() - 1);
  if (x.size(2) % div != 0 || x.size(3) % div != 0 || x.size(2) < div) {
    invalidArgument(std::string(what) + " is " + std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)) +
                    "; height and width must be multiples of 2^(levels-1) = " + std::to_string(div));
  }
  if (!x.is_floating_point()) invalidArgument(std::string(what) + " must be a floating-point tensor");
}

void checkFinite(const at::Tensor& x, const char* what) {
  if (!at::isfinite(x).all().item<bool>()) invalidArgument(std::string(what) + " contains NaN or Inf");
}

// h must be [B or 1, C_h, H/2^(L-1), W/2^(L-1)] for images of the given size.
void checkH(const at::Tensor& h, const UNetConfig& c, int64_t height, int64_t width, const char* what) {
  const int64_t div = int64_t{1} << (c.levels() - 1);
  const std::vector<int64_t> want{c.ch * c.chMult.back(), height / div, width / div};
  if (h.dim() != 4 || h.size(1) != want[0] || h.size(2) != want[1] || h.size(3) != want[2]) {
    invalidArgument(std::string(what) + " must be [B, " + std::to_string(want[0]) + ", " + std::to_string(want[1]) + ", " +
                    std::to_string(want[2]) + "] (h-space of this model and image size), got " + shapeStr(h.sizes()));
  }
}

at::Tensor output(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

}  // namespace

at::Tensor DiffusionState::prepare(const at::Tensor& x) const {
  at::Tensor r = x.to(device, dtype);
  return channelsLast && r.dim() == 4 ? r.contiguous(at::MemoryFormat::ChannelsLast) : r.contiguous();
}

Napi::Function DiffusionHandle::Init(Napi::Env env) {
  return DefineClass(env, "DiffusionModel",
                     {
                         InstanceAccessor<&DiffusionHandle::Config>("config"),
                         InstanceAccessor<&DiffusionHandle::ParameterCount>("parameterCount"),
                         InstanceAccessor<&DiffusionHandle::Device>("device"),
                         InstanceAccessor<&DiffusionHandle::Dtype>("dtype"),
                         InstanceAccessor<&DiffusionHandle::Disposed>("disposed"),
                         InstanceMethod<&DiffusionHandle::Dispose>("dispose"),
                         InstanceMethod<&DiffusionHandle::StateDict>("stateDict"),
                         InstanceMethod<&DiffusionHandle::LoadStateDict>("loadStateDict"),
                         InstanceMethod<&DiffusionHandle::Forward>("forward"),
                         InstanceMethod<&DiffusionHandle::Invert>("invert"),
                         InstanceMethod<&DiffusionHandle::Decode>("decode"),
                         InstanceMethod<&DiffusionHandle::Save>("save"),
                     });
}

DiffusionHandle::DiffusionHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DiffusionHandle>(info) {
  guarded(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal()) invalidArgument("diffusion models are made by createDiffusion() / loadDiffusion()");
    state_ = *info[0].As<Napi::External<std::shared_ptr<DiffusionState>>>().Data();
    return 0;
  });
}

Napi::Object DiffusionHandle::Wrap(Napi::Env env, std::shared_ptr<DiffusionState> state) {
  auto ext = Napi::External<std::shared_ptr<DiffusionState>>::New(env, &state);
  return AddonData::get(env).diffusionCtor.New({ext});
}

std::shared_ptr<DiffusionState> DiffusionHandle::From(Napi::Value value, const char* what) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(AddonData::get(value.Env()).diffusionCtor.Value())) {
    invalidArgument(std::string(what) + " must be a DiffusionModel");
  }
  return Unwrap(value.As<Napi::Object>())->state(what);
}

std::shared_ptr<DiffusionState> DiffusionHandle::state(const char* what) const {
  if (!state_) throw BiaError(ErrorCode::Disposed, std::string(what) + " was used after dispose()");
  return state_;
}

Napi::Value DiffusionHandle::Config(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return configToJs(info.Env(), state()->unet->config()); });
}
Napi::Value DiffusionHandle::ParameterCount(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(state()->unet->parameterCount())); });
}
Napi::Value DiffusionHandle::Device(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), deviceName(state()->device)); });
}
Napi::Value DiffusionHandle::Dtype(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(state()->dtype)); });
}
Napi::Value DiffusionHandle::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }
Napi::Value DiffusionHandle::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();  // queued jobs keep their own reference until they finish
  return info.Env().Undefined();
}

Napi::Value DiffusionHandle::StateDict(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return stateToJs(info.Env(), moduleState(*state()->unet));
  });
}

Napi::Value DiffusionHandle::LoadStateDict(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    bia::StateDict entries = stateFromJs(info[0]);
    const bool strict = info[1].IsUndefined() ? true : info[1].ToBoolean().Value();
    return startJob(info.Env(), info[2], "bia.diffusion.load", [st, entries, strict](JobContext&) -> Finisher {
      loadStateDictInto(*st->unet, entries, strict);
      synchronize(st->device);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  });
}

Napi::Value DiffusionHandle::Forward(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    const UNetConfig& c = st->unet->config();
    at::Tensor x = TensorHandle::From(info[0], "x");
    checkImage(x, c, "x");
    std::vector<int64_t> ts = intArray(info[1], "t");
    if (ts.size() != 1 && static_cast<int64_t>(ts.size()) != x.size(0)) invalidArgument("t must have 1 or B entries");
    for (int64_t t : ts) if (t < 0 || t > 999) invalidArgument("t must be in [0, 999], got " + std::to_string(t));
    Napi::Object o = optObject(info[2], "options");
    at::Tensor hReplace, hDelta;
    if (o.Has("h") && !o.Get("h").IsUndefined()) hReplace = TensorHandle::From(o.Get("h"), "h");
    if (o.Has("hDelta") && !o.Get("hDelta").IsUndefined()) hDelta = TensorHandle::From(o.Get("hDelta"), "hDelta");
    if (hReplace.defined()) checkH(hReplace, c, x.size(2), x.size(3), "h");
    if (hDelta.defined()) checkH(hDelta, c, x.size(2), x.size(3), "hDelta");
    return startJob(info.Env(), info[3], "bia.diffusion.forward", [st, x, ts, hReplace, hDelta](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      AutocastGuard autocast(st->device, st->autocast);
      checkFinite(x, "x");
      at::Tensor xx = st->prepare(x);
      at::Tensor t = ts.size() == 1 ? at::full({xx.size(0)}, static_cast<double>(ts[0]), at::TensorOptions().dtype(at::kFloat).device(st->device))
                                    : at::tensor(std::vector<float>(ts.begin(), ts.end())).to(st->device);
      UNetFeatures f = st->unet->encode(xx, t);
      at::Tensor h = hReplace.defined() ? st->prepare(hReplace) : f.h;
      if (hDelta.defined()) h = h + st->prepare(hDelta);
      at::Tensor eps = output(st->unet->decode(h, f));
      at::Tensor hOut = output(f.h);
      synchronize(st->device);  // finish (and surface CUDA errors) inside the job
      return [eps, hOut](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("eps", TensorHandle::Wrap(env, eps));
        r.Set("h", TensorHandle::Wrap(env, hOut));
        return r;
      };
    });
  });
}

Napi::Value DiffusionHandle::Invert(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    at::Tensor x = TensorHandle::From(info[0], "x");
    checkImage(x, st->unet->config(), "x");
    Napi::Object o = optObject(info[1], "options");
    const int64_t t0 = optInt(o, "t0", 500, 1, 999);
    const int64_t steps = optInt(o, "steps", 40, 2, 1000);
    if (steps > t0 + 1) invalidArgument("steps must be at most t0 + 1");
    const bool keepAll = optBool(o, "keepAll", false);
    return startJob(info.Env(), info[2], "bia.diffusion.invert", [st, x, t0, steps, keepAll](JobContext& ctx) -> Finisher {
      c10::InferenceMode guard;
      AutocastGuard autocast(st->device, st->autocast);
      checkFinite(x, "x");
      InvertResult r = ddimInvert(st->unet, st->prepare(x), t0, steps, keepAll, ctx);
      at::Tensor xLat = output(r.xLat), hR = output(r.hR);
      std::vector<at::Tensor> hs;
      for (auto& h : r.hs) hs.push_back(output(h));
      auto tsOut = r.ts;
      synchronize(st->device);
      return [xLat, hR, hs, tsOut](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("xLat", TensorHandle::Wrap(env, xLat));
        out.Set("hR", TensorHandle::Wrap(env, hR));
        Napi::Array all = Napi::Array::New(env, hs.size());
        for (size_t i = 0; i < hs.size(); i++) all.Set(static_cast<uint32_t>(i), TensorHandle::Wrap(env, hs[i]));
        out.Set("hs", all);
        Napi::Array t = Napi::Array::New(env, tsOut.size());
        for (size_t i = 0; i < tsOut.size(); i++) t.Set(static_cast<uint32_t>(i), static_cast<double>(tsOut[i]));
        out.Set("ts", t);
        return out;
      };
    });
  });
}

Napi::Value DiffusionHandle::Decode(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
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
    d.seed = static_cast<uint64_t>(optInt(o, "seed", 909090, 0, int64_t{1} << 52));
    const int64_t batchSize = optInt(o, "batchSize", 16, 1, 4096);
    if (o.Has("hRef") && !o.Get("hRef").IsUndefined()) {
      d.hRef = TensorHandle::From(o.Get("hRef"), "hRef");
      checkH(d.hRef, c, xLat.size(2), xLat.size(3), "hRef");
      if (d.hRef.size(0) != 1 && (!h.defined() || d.hRef.size(0) != h.size(0))) invalidArgument("hRef must have batch 1 or the batch of h");
    }
    return startJob(info.Env(), info[3], "bia.diffusion.decode", [st, xLat, h, d, batchSize](JobContext& ctx) -> Finisher {
      c10::InferenceMode guard;
      AutocastGuard autocast(st->device, st->autocast);
      checkFinite(xLat, "xLat");
      if (h.defined()) checkFinite(h, "h");
      DecodeOptions dd = d;
      const at::Tensor hRef = d.hRef.defined() ? st->prepare(d.hRef) : at::Tensor();
      at::Tensor lat = st->prepare(xLat);
      const int64_t total = h.defined() ? h.size(0) : lat.size(0);
      std::vector<at::Tensor> parts;
      for (int64_t start = 0; start < total; start += batchSize) {
        const int64_t n = std::min(batchSize, total - start);
        at::Tensor hb = h.defined() ? st->prepare(h.narrow(0, start, n)) : at::Tensor();
        at::Tensor lb = lat.size(0) == 1 ? lat : lat.narrow(0, start, n);
        if (hRef.defined()) dd.hRef = hRef.size(0) == 1 ? hRef : hRef.narrow(0, start, n);
        dd.firstIndex = start;
        parts.push_back(output(ddimDecode(st->unet, lb, hb, dd, ctx)));
      }
      at::Tensor x = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
      synchronize(st->device);
      return [x](Napi::Env env) -> Napi::Value { return TensorHandle::Wrap(env, x); };
    });
  });
}

namespace {

struct ModelOptions {
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = at::kFloat;
  bool channelsLast = false;
  std::optional<at::ScalarType> autocast;
};

// (device, dtype, channelsLast, autocast) at info[first..first+3]
ModelOptions parseModelOptions(const Napi::CallbackInfo& info, size_t first) {
  ModelOptions m;
  m.device = parseDevice(info[first].IsString() ? std::string(info[first].As<Napi::String>()) : "cpu");
  m.dtype = parseDtype(info[first + 1].IsString() ? std::string(info[first + 1].As<Napi::String>()) : "float32");
  if (m.dtype != at::kFloat && m.dtype != at::kHalf && m.dtype != at::kBFloat16) invalidArgument("the model dtype must be float32, float16 or bfloat16");
  m.channelsLast = info[first + 2].ToBoolean();
  if (info[first + 3].IsString()) {
    m.autocast = parseDtype(info[first + 3].As<Napi::String>());
    if (*m.autocast != at::kHalf && *m.autocast != at::kBFloat16) invalidArgument("autocast must be float16 or bfloat16");
  }
  return m;
}

// Move a built (and possibly loaded) UNet to its device, dtype and memory format.
std::shared_ptr<DiffusionState> finishModel(UNet unet, const ModelOptions& m) {
  auto st = std::make_shared<DiffusionState>();
  st->unet = std::move(unet);
  st->unet->eval();
  st->unet->to(m.device, m.dtype);
  if (m.channelsLast) {
    torch::NoGradGuard ng;
    for (auto& p : st->unet->parameters()) if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
  st->device = m.device;
  st->dtype = m.dtype;
  st->channelsLast = m.channelsLast;
  st->autocast = m.autocast;
  synchronize(m.device);
  return st;
}

}  // namespace

Napi::Value LoadDiffusion(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathFromJs(info[0]);
    std::optional<UNetConfig> config;
    if (!info[1].IsUndefined() && !info[1].IsNull()) config = unetConfigFromJs(info[1]);
    ModelOptions m = parseModelOptions(info, 2);
    const bool strict = info[6].IsUndefined() ? true : info[6].ToBoolean().Value();
    return startJob(info.Env(), info[7], "bia.diffusion.load", [path, config, m, strict](JobContext& ctx) -> Finisher {
      Checkpoint ck = readForLoading(path, ctx);
      UNetConfig c = config ? *config : (ck.metadata.count(kUNetConfigKey) ? unetConfigFromJson(ck.metadata.at(kUNetConfigKey)) : unetPreset("celeba-hq-256"));
      UNet unet(c);
      try {
        loadStateDictInto(*unet, ck.tensors, strict);
      } catch (const BiaError& e) {
        if (e.code() != ErrorCode::CheckpointMismatch) throw;
        throw BiaError(ErrorCode::CheckpointMismatch, path + ": " + e.what() +
                       (config ? "" : " (no config was given: pass the model's config, e.g. {config: 'tiny'})"));
      }
      releaseCheckpoint(ck);  // before moving the model
      auto st = finishModel(std::move(unet), m);
      return [st](Napi::Env env) -> Napi::Value { return DiffusionHandle::Wrap(env, st); };
    });
  });
}

Napi::Value DiffusionHandle::Save(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    const std::string path = pathFromJs(info[0]);
    std::map<std::string, std::string> metadata = metadataFromJs(info[1]);
    metadata[kUNetConfigKey] = unetConfigToJson(st->unet->config());
    metadata["format"] = "pt";
    return startJob(info.Env(), info[2], "bia.diffusion.save", [st, path, metadata](JobContext&) -> Finisher {
      writeSafetensors(path, forSaving(moduleState(*st->unet)), metadata);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  });
}

Napi::Value CreateDiffusion(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    UNetConfig c = unetConfigFromJs(info[0]);
    if (!info[1].IsNumber()) invalidArgument("seed must be a number");
    const uint64_t seed = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    ModelOptions m = parseModelOptions(info, 2);
    return startJob(info.Env(), info[6], "bia.diffusion.create", [c, seed, m](JobContext&) -> Finisher {
      torch::manual_seed(seed);  // LibTorch's default initialisation, seeded
      auto st = finishModel(UNet(c), m);
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
