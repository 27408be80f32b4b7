#include "module_io.h"

#include <sstream>

#include "allocator.h"
#include "args.h"
#include "errors.h"
#include "tensor.h"

namespace bia {

std::shared_ptr<torch::nn::Module> container(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

Checkpoint readForLoading(const std::string& path, JobContext& ctx) { return readCheckpoint(path, jobProgress(ctx, "read")); }

void releaseCheckpoint(Checkpoint& ck) {
  ck.tensors.clear();
  emptyCpuCache();
}

StateDict moduleState(const torch::nn::Module& module) {
  StateDict out;
  for (const auto& p : module.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

StateDict forSaving(const StateDict& state) {
  StateDict out;
  for (const auto& e : state) out.emplace_back(e.first, e.second.detach().to(at::kCPU).contiguous());
  return out;
}

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

void loadStateDictInto(torch::nn::Module& module, const StateDict& entries, bool strict) {
  std::map<std::string, at::Tensor> own;
  for (auto& e : moduleState(module)) own.emplace(e.first, e.second);
  std::vector<std::string> missing, unexpected, misShaped;
  std::map<std::string, const at::Tensor*> given;
  for (const auto& e : entries) given[e.first] = &e.second;
  for (const auto& o : own) {
    auto it = given.find(o.first);
    if (it == given.end()) {
      missing.push_back(o.first);
    } else if (it->second->sizes() != o.second.sizes()) {
      misShaped.push_back(o.first + " (checkpoint " + c10::str(it->second->sizes()) + ", model " + c10::str(o.second.sizes()) + ")");
    }
  }
  for (const auto& g : given) if (!own.count(g.first)) unexpected.push_back(g.first);
  auto list = [](const std::vector<std::string>& v) {
    std::ostringstream s;
    for (size_t i = 0; i < v.size() && i < 5; i++) s << (i ? ", " : "") << v[i];
    if (v.size() > 5) s << ", … (" << v.size() << " in all)";
    return s.str();
  };
  if (!misShaped.empty() || (strict && (!missing.empty() || !unexpected.empty()))) {
    std::ostringstream msg;
    const bool foreign = !given.empty() && missing.size() == own.size();
    msg << (foreign ? "the checkpoint belongs to another architecture (none of its tensors match this model)"
                    : "the checkpoint does not fit the model");
    if (!missing.empty()) msg << "; missing: " << list(missing);
    if (!unexpected.empty()) msg << "; unexpected: " << list(unexpected);
    if (!misShaped.empty()) msg << "; wrong shape: " << list(misShaped);
    throw BiaError(ErrorCode::CheckpointMismatch, msg.str());
  }
  torch::NoGradGuard noGrad;
  for (auto& o : own) {
    auto it = given.find(o.first);
    if (it != given.end()) o.second.copy_(*it->second);
  }
}

}  // namespace bia
