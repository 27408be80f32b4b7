#include "model_js.h"

#include "args.h"
#include "device.h"
#include "errors.h"
#include "tensor_js.h"

namespace bia {

Napi::Array stateToJs(Napi::Env env, const StateDict& state) {
  Napi::Array out = Napi::Array::New(env, state.size());
  for (size_t i = 0; i < state.size(); i++) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, state[i].first);
    pair.Set(1u, TensorHandle::Wrap(env, state[i].second.detach()));
    out.Set(static_cast<uint32_t>(i), pair);
  }
  return out;
}

StateDict stateFromJs(Napi::Value entries) {
  if (!entries.IsArray()) invalidArgument("entries must be an array of [name, Tensor]");
  Napi::Array arr = entries.As<Napi::Array>();
  StateDict out;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value e = arr.Get(i);
    if (!e.IsArray() || e.As<Napi::Array>().Length() != 2 || !e.As<Napi::Array>().Get(0u).IsString()) {
      invalidArgument("entries must be an array of [name, Tensor]");
    }
    out.emplace_back(e.As<Napi::Array>().Get(0u).As<Napi::String>(), TensorHandle::From(e.As<Napi::Array>().Get(1u), "state-dict tensor"));
  }
  return out;
}

std::map<std::string, std::string> metadataFromJs(Napi::Value value) {
  std::map<std::string, std::string> metadata;
  Napi::Object md = optObject(value, "metadata");
  Napi::Array keys = md.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string k = keys.Get(i).As<Napi::String>();
    Napi::Value v = md.Get(k);
    if (!v.IsString()) invalidArgument("metadata values must be strings ('" + k + "' is not)");
    metadata[k] = v.As<Napi::String>();
  }
  return metadata;
}

std::string pathFromJs(Napi::Value value) {
  if (!value.IsString() || value.As<Napi::String>().Utf8Value().empty()) invalidArgument("path must be a non-empty string");
  return value.As<Napi::String>();
}


std::pair<c10::Device, c10::ScalarType> modelPlacementFromJs(Napi::Value device, Napi::Value dtype, const char* what) {
  const c10::Device d = parseDevice(device.IsString() ? std::string(device.As<Napi::String>()) : "cpu");
  const c10::ScalarType t = parseDtype(dtype.IsString() ? std::string(dtype.As<Napi::String>()) : "float32");
  if (t != at::kFloat && t != at::kHalf && t != at::kBFloat16) invalidArgument(std::string(what) + " must be float32, float16 or bfloat16");
  return {d, t};
}

}  // namespace bia
