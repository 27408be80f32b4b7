// The AttributeEstimator handle and the addon's createAttributeEstimator / loadAttributeEstimator
// (see train_js.h).
#include "args.h"
#include "device.h"
#include "errors.h"
#include "job.h"
#include "tensor_js.h"
#include "train_js.h"

namespace bia {

namespace {

using State = std::shared_ptr<AttributeState>;

Napi::Value config(Napi::Env env, const State& st) {
  const AttributeConfig& c = st->net->config();
  Napi::Object o = Napi::Object::New(env);
  o.Set("inChannels", static_cast<double>(c.inChannels));
  o.Set("outputs", static_cast<double>(c.outputs));
  o.Set("width", static_cast<double>(c.width));
  o.Set("stages", static_cast<double>(c.stages));
  return o;
}

// (images, jobOpts) → Tensor [B, outputs], or with features [B, channels]
Napi::Value run(const Napi::CallbackInfo& info, const State& st, bool features) {
  at::Tensor x = TensorHandle::From(info[0], "images");
  checkAttributeImages(x, st->net->config());
  return startJob(info.Env(), info[1], features ? "bia.attributes.features" : "bia.attributes.predict", [st, x, features](JobContext&) -> Finisher {
    return tensorResult(attributePredict(*st, x, features));
  });
}
Napi::Value predict(const Napi::CallbackInfo& info, const State& st) { return run(info, st, false); }
Napi::Value features(const Napi::CallbackInfo& info, const State& st) { return run(info, st, true); }

}  // namespace

std::vector<AttributeHandle::Property> AttributeHandle::properties() {
  return ModelProperties({Getter<&config>("config")}, {AsyncMethod<&predict>("predict"), AsyncMethod<&features>("features"), SaveMethod()});
}

AttributeConfig attributeConfigFromJs(Napi::Value v) {
  Napi::Object o = optObject(v, "config");
  AttributeConfig c;
  c.inChannels = optInt(o, "inChannels", c.inChannels, 1, 64);
  c.outputs = optInt(o, "outputs", c.outputs, 1, 65536);
  c.width = optInt(o, "width", c.width, 1, 1024);
  c.stages = optInt(o, "stages", c.stages, 1, 8);
  c.validate();
  return c;
}

Napi::Value CreateAttributeEstimator(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    AttributeConfig c = attributeConfigFromJs(info[0]);
    if (!info[1].IsNumber()) invalidArgument("seed must be a number");
    const uint64_t seed = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    auto [device, dtype] = modelPlacementFromJs(info[2], info[3], "the estimator dtype");
    return startJob(info.Env(), info[4], "bia.attributes.create", [c, seed, device = device, dtype = dtype](JobContext&) -> Finisher {
      auto st = createAttributeState(c, seed, device, dtype);
      return [st](Napi::Env env) -> Napi::Value { return AttributeHandle::Wrap(env, st); };
    });
  });
}

Napi::Value LoadAttributeEstimator(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathFromJs(info[0]);
    auto [device, dtype] = modelPlacementFromJs(info[1], info[2], "the estimator dtype");
    const bool strict = info[3].IsUndefined() ? true : info[3].ToBoolean().Value();
    return startJob(info.Env(), info[4], "bia.attributes.loadFile", [path, device = device, dtype = dtype, strict](JobContext& ctx) -> Finisher {
      auto st = loadAttributeState(path, device, dtype, strict, ctx);
      return [st](Napi::Env env) -> Napi::Value { return AttributeHandle::Wrap(env, st); };
    });
  });
}

}  // namespace bia
