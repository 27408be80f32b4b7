#include "vgg_js.h"

#include <c10/core/InferenceMode.h>

#include "device.h"
#include "errors.h"
#include "job.h"
#include "tensor_js.h"

namespace bia {

namespace {

// The images a and b of distance() and gradient(), checked.
std::pair<at::Tensor, at::Tensor> imagePair(const Napi::CallbackInfo& info) {
  at::Tensor a = TensorHandle::From(info[0], "a");
  at::Tensor b = TensorHandle::From(info[1], "b");
  checkPerceptualImages(a, b);
  return {a, b};
}

using State = std::shared_ptr<Vgg16Perceptual>;

Napi::Value name(Napi::Env env, const State& n) { return Napi::String::New(env, n->name()); }

Napi::Value distance(const Napi::CallbackInfo& info, const State& n) {
  auto [a, b] = imagePair(info);
  return startJob(info.Env(), info[2], "bia.perceptual.distance", [n, a = a, b = b](JobContext& ctx) -> Finisher {
    c10::InferenceMode guard;
    ctx.checkAbort();
    at::Tensor d = readyDistance(n->distance(a, b));
    return [d](Napi::Env env) -> Napi::Value { return toTypedArray(env, d); };
  });
}

Napi::Value gradient(const Napi::CallbackInfo& info, const State& n) {
  auto [a, b] = imagePair(info);
  return startJob(info.Env(), info[2], "bia.perceptual.gradient", [n, a = a, b = b](JobContext& ctx) -> Finisher {
    ctx.checkAbort();
    PerceptualGradient r = perceptualGradient(*n, a, b);
    return [r](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("distance", toTypedArray(env, r.distance));
      o.Set("gradient", TensorHandle::Wrap(env, r.gradient));
      return o;
    };
  });
}

Napi::Value features(const Napi::CallbackInfo& info, const State& n) {
  at::Tensor x = TensorHandle::From(info[0], "images");
  checkPerceptualImages(x, x);
  return startJob(info.Env(), info[1], "bia.perceptual.features", [n, x](JobContext& ctx) -> Finisher {
    c10::InferenceMode guard;
    ctx.checkAbort();
    std::vector<at::Tensor> f = n->features(x);
    for (auto& t : f) t = t.contiguous();
    synchronize(n->device());
    return [f](Napi::Env env) -> Napi::Value {
      Napi::Array arr = Napi::Array::New(env, f.size());
      for (size_t i = 0; i < f.size(); i++) arr.Set(static_cast<uint32_t>(i), TensorHandle::Wrap(env, f[i]));
      return arr;
    };
  });
}

}  // namespace

std::vector<PerceptualHandle::Property> PerceptualHandle::properties() {
  return ModelProperties({Getter<&name>("name")}, {SaveMethod(), AsyncMethod<&distance>("distance"), AsyncMethod<&gradient>("gradient"),
                                                     AsyncMethod<&features>("features")});
}

Napi::Value CreatePerceptual(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const uint64_t seed = info[0].IsNumber() ? static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()) : 0;
    auto [device, dtype] = modelPlacementFromJs(info[1], info[2], "the perceptual model's dtype");
    return startJob(info.Env(), info[3], "bia.perceptual.create", [seed, device = device, dtype = dtype](JobContext&) -> Finisher {
      auto net = createVgg16(seed, device, dtype);
      return [net](Napi::Env env) -> Napi::Value { return PerceptualHandle::Wrap(env, net); };
    });
  });
}

Napi::Value LoadPerceptual(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathFromJs(info[0]);
    auto [device, dtype] = modelPlacementFromJs(info[1], info[2], "the perceptual model's dtype");
    return startJob(info.Env(), info[3], "bia.perceptual.loadFile", [path, device = device, dtype = dtype](JobContext& ctx) -> Finisher {
      auto net = loadVgg16(path, device, dtype, ctx);
      return [net](Napi::Env env) -> Napi::Value { return PerceptualHandle::Wrap(env, net); };
    });
  });
}

}  // namespace bia
