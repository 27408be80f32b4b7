#include "checkpoint_js.h"

#include <map>
#include <memory>
#include <string>

#include "checkpoint.h"
#include "errors.h"
#include "job.h"
#include "tensor_js.h"

namespace bia {

namespace {

std::string pathArgument(const Napi::Value& v) {
  if (!v.IsString()) invalidArgument("path must be a non-empty string");
  std::string path = v.As<Napi::String>();
  if (path.empty() || path.find('\0') != std::string::npos) invalidArgument("path must be a non-empty string without NUL characters");
  return path;
}

// An own data property (Set() would run the __proto__ setter for a key named "__proto__").
void defineValue(Napi::Object obj, const std::string& key, Napi::Value value) {
  obj.DefineProperty(Napi::PropertyDescriptor::Value(key, value, static_cast<napi_property_attributes>(napi_writable | napi_enumerable | napi_configurable)));
}

}  // namespace

Napi::Value ReadCheckpoint(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathArgument(info[0]);
    return startJob(info.Env(), info[1], "bia.checkpoint.read", [path](JobContext& ctx) -> Finisher {
      auto ck = std::make_shared<Checkpoint>(readCheckpoint(path, jobProgress(ctx, "read")));
      return [ck](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("format", formatName(ck->format));
        Napi::Object metadata = Napi::Object::New(env);
        for (const auto& [k, v] : ck->metadata) defineValue(metadata, k, Napi::String::New(env, v));
        out.Set("metadata", metadata);
        Napi::Array tensors = Napi::Array::New(env, ck->tensors.size());
        for (size_t i = 0; i < ck->tensors.size(); i++) {
          Napi::Array pair = Napi::Array::New(env, 2);
          pair.Set(0u, Napi::String::New(env, ck->tensors[i].first));
          pair.Set(1u, TensorHandle::Wrap(env, ck->tensors[i].second));
          tensors.Set(static_cast<uint32_t>(i), pair);
        }
        out.Set("tensors", tensors);
        return out;
      };
    });
  });
}

Napi::Value WriteSafetensors(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathArgument(info[0]);
    if (!info[1].IsArray()) invalidArgument("tensors must be an array of [name, Tensor] pairs");
    Napi::Array entries = info[1].As<Napi::Array>();
    StateDict tensors;
    for (uint32_t i = 0; i < entries.Length(); i++) {
      Napi::Value e = entries.Get(i);
      if (!e.IsArray() || e.As<Napi::Array>().Length() != 2 || !e.As<Napi::Array>().Get(0u).IsString()) {
        invalidArgument("tensors[" + std::to_string(i) + "] must be a [name, Tensor] pair");
      }
      const std::string name = e.As<Napi::Array>().Get(0u).As<Napi::String>();
      const std::string what = "tensor '" + name + "'";
      tensors.emplace_back(name, TensorHandle::From(e.As<Napi::Array>().Get(1u), what.c_str()));
    }
    std::map<std::string, std::string> metadata;
    if (!info[2].IsUndefined() && !info[2].IsNull()) {
      if (!info[2].IsObject()) invalidArgument("metadata must be an object of strings");
      Napi::Object m = info[2].As<Napi::Object>();
      Napi::Array keys = m.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        const std::string k = keys.Get(i).ToString();
        Napi::Value v = m.Get(k);
        if (!v.IsString()) invalidArgument("metadata['" + k + "'] must be a string");
        metadata[k] = v.As<Napi::String>();
      }
    }
    return startJob(info.Env(), info[3], "bia.checkpoint.writeSafetensors", [path, tensors, metadata](JobContext& ctx) -> Finisher {
      writeSafetensors(path, tensors, metadata, jobProgress(ctx, "write"));
      return nullptr;
    });
  });
}

}  // namespace bia
