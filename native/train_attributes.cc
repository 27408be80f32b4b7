// The attribute estimator (see train.h): network, JS handle, creation and loading.
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <numeric>

#include "addon_data.h"
#include "args.h"
#include "device.h"
#include "errors.h"
#include "job.h"
#include "module_io.h"
#include "tensor.h"
#include "train.h"

namespace bia {

namespace {

constexpr const char* kAttributeConfigKey = "bia.attributes.config";

int64_t stageChannels(const AttributeConfig& c, int64_t i) { return c.width * std::min<int64_t>(int64_t{1} << i, 8); }

torch::nn::GroupNorm groupNorm(int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(std::gcd<int64_t>(8, channels), channels).eps(1e-5));
}

}  // namespace

void AttributeConfig::validate() const {
  if (inChannels < 1 || inChannels > 64) invalidArgument("attribute estimator inChannels must be in [1, 64]");
  if (outputs < 1 || outputs > 65536) invalidArgument("attribute estimator outputs must be in [1, 65536]");
  if (width < 1 || width > 1024) invalidArgument("attribute estimator width must be in [1, 1024]");
  if (stages < 1 || stages > 8) invalidArgument("attribute estimator stages must be in [1, 8]");
}

std::string AttributeConfig::toJson() const {
  return nlohmann::json{{"inChannels", inChannels}, {"outputs", outputs}, {"width", width}, {"stages", stages}}.dump();
}

AttributeConfig AttributeConfig::fromJson(const std::string& text) {
  AttributeConfig c;
  try {
    auto j = nlohmann::json::parse(text);
    c.inChannels = j.at("inChannels").get<int64_t>();
    c.outputs = j.at("outputs").get<int64_t>();
    c.width = j.at("width").get<int64_t>();
    c.stages = j.at("stages").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw BiaError(ErrorCode::Checkpoint, std::string("the ") + kAttributeConfigKey + " metadata is not an attribute estimator config: " + e.what());
  }
  try {
    c.validate();
  } catch (const BiaError& e) {
    throw BiaError(ErrorCode::Checkpoint, std::string("the ") + kAttributeConfigKey + " metadata is invalid: " + e.what());
  }
  return c;
}

AttributeNetImpl::AttributeNetImpl(const AttributeConfig& config) : config_(config) {
  config_.validate();
  auto stages = container(*this, "stages");
  int64_t in = config_.inChannels;
  for (int64_t i = 0; i < config_.stages; i++) {
    const int64_t out = stageChannels(config_, i);
    auto s = container(*stages, std::to_string(i));
    conv1_.push_back(s->register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(2).padding(1))));
    norm1_.push_back(s->register_module("norm1", groupNorm(out)));
    conv2_.push_back(s->register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1))));
    norm2_.push_back(s->register_module("norm2", groupNorm(out)));
    in = out;
  }
  head_ = register_module("head", torch::nn::Linear(in, config_.outputs));
}

at::Tensor AttributeNetImpl::features(const at::Tensor& x) {
  at::Tensor h = x;
  for (size_t i = 0; i < conv1_.size(); i++) {
    h = at::silu(norm1_[i]->forward(conv1_[i]->forward(h)));
    h = at::silu(norm2_[i]->forward(conv2_[i]->forward(h)));
  }
  return h.mean({2, 3});
}

at::Tensor AttributeNetImpl::forward(const at::Tensor& x) { return head_->forward(features(x)); }

std::shared_ptr<AttributeState> makeAttributeState(const AttributeConfig& config, const StateDict* weights, c10::Device device,
                                                   c10::ScalarType dtype) {
  auto st = std::make_shared<AttributeState>();
  st->net = AttributeNet(config);
  if (weights) loadStateDictInto(*st->net, *weights, true);
  st->net->eval();
  st->net->to(device, dtype);
  st->device = device;
  st->dtype = dtype;
  synchronize(device);
  return st;
}

namespace {

void checkImages(const at::Tensor& x, const AttributeConfig& c) {
  if (x.dim() != 4 || x.size(0) < 1 || x.size(1) != c.inChannels) {
    invalidArgument("images must be [B, " + std::to_string(c.inChannels) + ", H, W], got " + c10::str(x.sizes()));
  }
  const int64_t minSide = int64_t{1} << c.stages;
  if (x.size(2) < minSide || x.size(3) < minSide) invalidArgument("images must be at least " + std::to_string(minSide) + " pixels on each side");
  if (!x.is_floating_point()) invalidArgument("images must be a floating-point tensor in [-1, 1]");
}

std::pair<c10::Device, c10::ScalarType> parseDeviceDtype(const Napi::Value& d, const Napi::Value& t) {
  const c10::Device device = parseDevice(d.IsString() ? std::string(d.As<Napi::String>()) : "cpu");
  const c10::ScalarType dtype = parseDtype(t.IsString() ? std::string(t.As<Napi::String>()) : "float32");
  if (dtype != at::kFloat && dtype != at::kHalf && dtype != at::kBFloat16) invalidArgument("the estimator dtype must be float32, float16 or bfloat16");
  return {device, dtype};
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

}  // namespace

Napi::Function AttributeHandle::Init(Napi::Env env) {
  return DefineClass(env, "AttributeEstimator",
                     {
                         InstanceAccessor<&AttributeHandle::Config>("config"),
                         InstanceAccessor<&AttributeHandle::ParameterCount>("parameterCount"),
                         InstanceAccessor<&AttributeHandle::Device>("device"),
                         InstanceAccessor<&AttributeHandle::Dtype>("dtype"),
                         InstanceAccessor<&AttributeHandle::Disposed>("disposed"),
                         InstanceMethod<&AttributeHandle::Dispose>("dispose"),
                         InstanceMethod<&AttributeHandle::StateDict>("stateDict"),
                         InstanceMethod<&AttributeHandle::LoadStateDict>("loadStateDict"),
                         InstanceMethod<&AttributeHandle::Predict>("predict"),
                         InstanceMethod<&AttributeHandle::Features>("features"),
                         InstanceMethod<&AttributeHandle::Save>("save"),
                     });
}

AttributeHandle::AttributeHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AttributeHandle>(info) {
  guarded(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal()) invalidArgument("attribute estimators are made by createAttributeEstimator() / loadAttributeEstimator()");
    state_ = *info[0].As<Napi::External<std::shared_ptr<AttributeState>>>().Data();
    return 0;
  });
}

Napi::Object AttributeHandle::Wrap(Napi::Env env, std::shared_ptr<AttributeState> state) {
  auto ext = Napi::External<std::shared_ptr<AttributeState>>::New(env, &state);
  return AddonData::get(env).attributeCtor.New({ext});
}

std::shared_ptr<AttributeState> AttributeHandle::state() const {
  if (!state_) throw BiaError(ErrorCode::Disposed, "attribute estimator was used after dispose()");
  return state_;
}

Napi::Value AttributeHandle::Config(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const AttributeConfig& c = state()->net->config();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("inChannels", static_cast<double>(c.inChannels));
    o.Set("outputs", static_cast<double>(c.outputs));
    o.Set("width", static_cast<double>(c.width));
    o.Set("stages", static_cast<double>(c.stages));
    return o;
  });
}
Napi::Value AttributeHandle::ParameterCount(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    int64_t n = 0;
    for (const auto& p : state()->net->parameters(true)) n += p.numel();
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  });
}
Napi::Value AttributeHandle::Device(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), deviceName(state()->device)); });
}
Napi::Value AttributeHandle::Dtype(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(state()->dtype)); });
}
Napi::Value AttributeHandle::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }
Napi::Value AttributeHandle::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

Napi::Value AttributeHandle::StateDict(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return stateToJs(info.Env(), moduleState(*state()->net)); });
}

Napi::Value AttributeHandle::LoadStateDict(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    bia::StateDict entries = stateFromJs(info[0]);
    const bool strict = info[1].IsUndefined() ? true : info[1].ToBoolean().Value();
    return startJob(info.Env(), info[2], "bia.attributes.load", [st, entries, strict](JobContext&) -> Finisher {
      loadStateDictInto(*st->net, entries, strict);
      synchronize(st->device);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  });
}

Napi::Value AttributeHandle::Predict(const Napi::CallbackInfo& info) { return Run(info, false); }
Napi::Value AttributeHandle::Features(const Napi::CallbackInfo& info) { return Run(info, true); }

Napi::Value AttributeHandle::Run(const Napi::CallbackInfo& info, bool features) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    at::Tensor x = TensorHandle::From(info[0], "images");
    checkImages(x, st->net->config());
    return startJob(info.Env(), info[1], features ? "bia.attributes.features" : "bia.attributes.predict", [st, x, features](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      if (!at::isfinite(x).all().item<bool>()) invalidArgument("images contain NaN or Inf");
      const at::Tensor xin = x.to(st->device, st->dtype);
      at::Tensor y = (features ? st->net->features(xin) : st->net->forward(xin)).to(at::kFloat).contiguous();
      synchronize(st->device);
      return [y](Napi::Env env) -> Napi::Value { return TensorHandle::Wrap(env, y); };
    });
  });
}

Napi::Value AttributeHandle::Save(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    const std::string path = pathFromJs(info[0]);
    std::map<std::string, std::string> metadata = metadataFromJs(info[1]);
    metadata[kAttributeConfigKey] = st->net->config().toJson();
    return startJob(info.Env(), info[2], "bia.attributes.save", [st, path, metadata](JobContext& ctx) -> Finisher {
      writeSafetensors(path, forSaving(moduleState(*st->net)), metadata, jobProgress(ctx, "write"));
      return [](Napi::Env env) { return env.Undefined(); };
    });
  });
}

Napi::Value CreateAttributeEstimator(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    AttributeConfig c = attributeConfigFromJs(info[0]);
    if (!info[1].IsNumber()) invalidArgument("seed must be a number");
    const uint64_t seed = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    auto [device, dtype] = parseDeviceDtype(info[2], info[3]);
    return startJob(info.Env(), info[4], "bia.attributes.create", [c, seed, device = device, dtype = dtype](JobContext&) -> Finisher {
      torch::manual_seed(seed);
      auto st = makeAttributeState(c, nullptr, device, dtype);
      return [st](Napi::Env env) -> Napi::Value { return AttributeHandle::Wrap(env, st); };
    });
  });
}

Napi::Value LoadAttributeEstimator(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathFromJs(info[0]);
    auto [device, dtype] = parseDeviceDtype(info[1], info[2]);
    const bool strict = info[3].IsUndefined() ? true : info[3].ToBoolean().Value();
    return startJob(info.Env(), info[4], "bia.attributes.loadFile", [path, device = device, dtype = dtype, strict](JobContext& ctx) -> Finisher {
      Checkpoint ck = readForLoading(path, ctx);
      auto it = ck.metadata.find(kAttributeConfigKey);
      if (it == ck.metadata.end()) {
        throw BiaError(ErrorCode::CheckpointMismatch, path + " has no " + kAttributeConfigKey + " metadata: not an attribute estimator saved by this library");
      }
      AttributeConfig c = AttributeConfig::fromJson(it->second);
      auto st = std::make_shared<AttributeState>();
      st->net = AttributeNet(c);
      try {
        loadStateDictInto(*st->net, ck.tensors, strict);
      } catch (const BiaError& e) {
        if (e.code() != ErrorCode::CheckpointMismatch) throw;
        throw BiaError(ErrorCode::CheckpointMismatch, path + ": " + e.what());
      }
      releaseCheckpoint(ck);
      st->net->eval();
      st->net->to(device, dtype);
      st->device = device;
      st->dtype = dtype;
      synchronize(device);
      return [st](Napi::Env env) -> Napi::Value { return AttributeHandle::Wrap(env, st); };
    });
  });
}

}  // namespace bia
