#include "mobilefacenet_binding.h"

#include <c10/core/InferenceMode.h>

#include <cmath>
#include <memory>

#include "diffusion.h"
#include "identity_net.h"
#include "job.h"
#include "tensor.h"

namespace bia {

namespace {

using Net = std::shared_ptr<IdentityNet>;

Napi::Value stateDict(const Napi::CallbackInfo& info, const Net& net) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    std::vector<std::pair<std::string, at::Tensor>> sd;
    for (const auto& p : net->module().named_parameters(true)) sd.emplace_back(p.key(), p.value().detach());
    for (const auto& b : net->module().named_buffers(true)) sd.emplace_back(b.key(), b.value().detach());
    Napi::Array out = Napi::Array::New(info.Env(), sd.size());
    for (size_t i = 0; i < sd.size(); i++) {
      Napi::Array pair = Napi::Array::New(info.Env(), 2);
      pair.Set(0u, sd[i].first);
      pair.Set(1u, TensorHandle::Wrap(info.Env(), sd[i].second));
      out.Set(static_cast<uint32_t>(i), pair);
    }
    return out;
  });
}

Napi::Value loadStateDict(const Napi::CallbackInfo& info, const Net& net) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsArray()) invalidArgument("entries must be an array of [name, Tensor]");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<std::pair<std::string, at::Tensor>> entries;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value e = arr.Get(i);
      if (!e.IsArray() || e.As<Napi::Array>().Length() != 2 || !e.As<Napi::Array>().Get(0u).IsString()) {
        invalidArgument("entries must be an array of [name, Tensor]");
      }
      entries.emplace_back(e.As<Napi::Array>().Get(0u).As<Napi::String>(), TensorHandle::From(e.As<Napi::Array>().Get(1u), "state-dict tensor"));
    }
    const bool strict = info[1].IsUndefined() ? true : info[1].ToBoolean().Value();
    return startJob(info.Env(), info[2], "bia.mobilefacenet.load", [net, entries, strict](JobContext&) -> Finisher {
      loadStateDictInto(net->module(), entries, strict);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  });
}

Napi::Value forward(const Napi::CallbackInfo& info, const Net& net) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor x = TensorHandle::From(info[0], "x");
    if (x.dim() != 4 || x.size(0) < 1 || x.size(1) != 3 || x.size(2) != 112 || x.size(3) != 112) {
      invalidArgument("x must be [B, 3, 112, 112], got " + c10::str(x.sizes()));
    }
    if (!x.is_floating_point()) invalidArgument("x must be a floating-point tensor");
    return startJob(info.Env(), info[1], "bia.mobilefacenet.forward", [net, x](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      net->module().eval();
      at::Tensor y = net->forward(x.to(at::kCPU, at::kFloat).contiguous()).contiguous();
      return [y](Napi::Env env) -> Napi::Value { return TensorHandle::Wrap(env, y); };
    });
  });
}

}  // namespace

Napi::Value MobileFaceNetExport(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsNumber()) invalidArgument("mobileFaceNet(width, embeddingSize) takes two numbers");
    const double width = info[0].As<Napi::Number>().DoubleValue();
    const double emb = info[1].As<Napi::Number>().DoubleValue();
    if (!(emb >= 1 && emb <= 65536) || emb != std::floor(emb)) invalidArgument("embeddingSize must be an integer in [1, 65536]");
    Net net = makeMobileFaceNet(width, static_cast<int64_t>(emb));
    Napi::Object o = Napi::Object::New(env);
    // Each function holds the net; it is freed when the last of them is collected.
    o.Set("stateDict", Napi::Function::New(env, [net](const Napi::CallbackInfo& i) { return stateDict(i, net); }, "stateDict"));
    o.Set("loadStateDict", Napi::Function::New(env, [net](const Napi::CallbackInfo& i) { return loadStateDict(i, net); }, "loadStateDict"));
    o.Set("forward", Napi::Function::New(env, [net](const Napi::CallbackInfo& i) { return forward(i, net); }, "forward"));
    return o;
  });
}

}  // namespace bia
