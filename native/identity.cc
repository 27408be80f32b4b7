#include "identity.h"

#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>
#include <set>

#include "addon_data.h"
#include "arcface.h"
#include "args.h"
#include "checkpoint.h"
#include "device.h"
#include "diffusion.h"
#include "errors.h"
#include "job.h"
#include "module_io.h"
#include "tensor.h"

namespace bia {

std::shared_ptr<IdentityNet> makeIdentityNet(const std::string& arch, double width, int64_t embeddingSize) {
  validateArch(arch, width, embeddingSize);
  if (arch == "ir_se50") return std::make_shared<IRSE50>(width, embeddingSize);
  if (arch == "iresnet18") return std::make_shared<IResNet>(18, width, embeddingSize);
  if (arch == "iresnet34") return std::make_shared<IResNet>(34, width, embeddingSize);
  if (arch == "iresnet50") return std::make_shared<IResNet>(50, width, embeddingSize);
  if (arch == "iresnet100") return std::make_shared<IResNet>(100, width, embeddingSize);
  if (arch == "mobilefacenet") return makeMobileFaceNet(width, embeddingSize);
  invalidArgument("arch must be one of ir_se50, iresnet18, iresnet34, iresnet50, iresnet100, mobilefacenet; got '" + arch + "'");
}

at::Tensor l2normalize(const at::Tensor& e) { return e / e.norm(2, {1}, true).clamp_min(1e-12); }

void validateArch(const std::string& arch, double width, int64_t embeddingSize) {
  static const std::set<std::string> known{"ir_se50", "iresnet18", "iresnet34", "iresnet50", "iresnet100", "mobilefacenet"};
  if (!known.count(arch)) invalidArgument("arch must be one of ir_se50, iresnet18, iresnet34, iresnet50, iresnet100, mobilefacenet; got '" + arch + "'");
  if (!(width > 0 && width <= 4)) invalidArgument("width must be in (0, 4]");
  if (embeddingSize < 1 || embeddingSize > 65536) invalidArgument("embeddingSize must be in [1, 65536]");
}

Protocol parseProtocol(const std::string& name) {
  if (name == "bia") return Protocol::Bia;
  if (name == "insightface") return Protocol::Insightface;
  if (name == "resize") return Protocol::Resize;
  invalidArgument("protocol must be 'bia', 'insightface' or 'resize'; got '" + name + "'");
}

void checkProtocolInput(at::IntArrayRef sizes, Protocol p) {
  if (sizes.size() != 4 || sizes[1] != 3 || sizes[0] < 1) invalidArgument("images must be [B, 3, H, W], got " + c10::str(sizes));
  const int64_t h = sizes[2], w = sizes[3];
  if (p == Protocol::Bia && (h != 256 || w != 256)) {
    invalidArgument("the 'bia' protocol takes 256x256 images (it crops rows 35:223, cols 32:220); got " + std::to_string(h) + "x" + std::to_string(w) + ": use 'resize'");
  }
  if (p == Protocol::Insightface && (h != 112 || w != 112)) {
    invalidArgument("the 'insightface' protocol takes 112x112 aligned faces; got " + std::to_string(h) + "x" + std::to_string(w) + ": use 'resize'");
  }
  if (h < 1 || w < 1) invalidArgument("images are empty");
}

at::Tensor preprocess(const at::Tensor& x, Protocol p) {
  checkProtocolInput(x.sizes(), p);
  const int64_t h = x.size(2), w = x.size(3);
  switch (p) {
    case Protocol::Bia:
      return at::adaptive_avg_pool2d(x.narrow(2, 35, 188).narrow(3, 32, 188), {112, 112});
    case Protocol::Insightface:
      return x;
    case Protocol::Resize:
      if (h == 112 && w == 112) return x;
      if (h >= 112 && w >= 112) return at::adaptive_avg_pool2d(x, {112, 112});
      return at::upsample_bilinear2d(x, {112, 112}, /*align_corners=*/false);
  }
  return x;
}

at::Tensor embed(IdentityNet& net, const at::Tensor& x, Protocol p, bool normalize) {
  at::Tensor e = net.forward(preprocess(x, p)).to(at::kFloat);
  return normalize ? l2normalize(e) : e;
}

namespace {

std::string shapeStr(at::IntArrayRef s) { return c10::str(s); }

struct Inferred {
  std::string arch;
  double width;
  int64_t embeddingSize;
};

const at::Tensor* find(const StateDict& sd, const std::string& key) {
  for (const auto& e : sd) if (e.first == key) return &e.second;
  return nullptr;
}

// Architecture, width and embedding size from the official key names and shapes.
Inferred inferArch(const StateDict& sd, const std::string& path) {
  if (const at::Tensor* w = find(sd, "input_layer.0.weight")) {
    const at::Tensor* lin = find(sd, "output_layer.3.weight");
    if (lin) return {"ir_se50", static_cast<double>(w->size(0)) / 64.0, lin->size(0)};
  }
  if (find(sd, "layer1.0.bn1.weight") && find(sd, "conv1.weight") && find(sd, "fc.weight")) {
    std::vector<std::set<int64_t>> blocks(4);
    for (const auto& e : sd) {
      for (int L = 0; L < 4; L++) {
        const std::string prefix = "layer" + std::to_string(L + 1) + ".";
        if (e.first.rfind(prefix, 0) == 0) blocks[L].insert(std::stoll(e.first.substr(prefix.size())));
      }
    }
    const std::vector<size_t> n{blocks[0].size(), blocks[1].size(), blocks[2].size(), blocks[3].size()};
    std::string arch;
    if (n == std::vector<size_t>{2, 2, 2, 2}) arch = "iresnet18";
    else if (n == std::vector<size_t>{3, 4, 6, 3}) arch = "iresnet34";
    else if (n == std::vector<size_t>{3, 4, 14, 3}) arch = "iresnet50";
    else if (n == std::vector<size_t>{3, 13, 30, 3}) arch = "iresnet100";
    if (!arch.empty()) return {arch, static_cast<double>(find(sd, "conv1.weight")->size(0)) / 64.0, find(sd, "fc.weight")->size(0)};
  }
  if (const at::Tensor* w = find(sd, "conv1.conv.weight")) {
    if (const at::Tensor* lin = find(sd, "linear.weight")) return {"mobilefacenet", static_cast<double>(w->size(0)) / 64.0, lin->size(0)};
  }
  std::string sample;
  for (size_t i = 0; i < sd.size() && i < 3; i++) sample += (i ? ", " : "") + sd[i].first;
  throw BiaError(ErrorCode::CheckpointMismatch, path + " is not an identity encoder checkpoint of a known architecture "
                 "(ir_se50, iresnet18/34/50/100, mobilefacenet); its first keys are: " + sample);
}

std::shared_ptr<EncoderState> finish(std::shared_ptr<IdentityNet> net, const std::string& arch, double width, c10::Device device, c10::ScalarType dtype) {
  auto st = std::make_shared<EncoderState>();
  net->module().eval();
  // Unlike Python's, LibTorch's Module::to(dtype) also converts integer buffers
  // (num_batches_tracked): move to the device, then cast only floating-point tensors.
  net->module().to(device);
  torch::NoGradGuard noGrad;
  for (auto& p : net->module().parameters(true)) if (p.is_floating_point()) p.set_data(p.to(dtype));
  for (auto& b : net->module().buffers(true)) if (b.is_floating_point()) b.set_data(b.to(dtype));
  st->net = std::move(net);
  st->arch = arch;
  st->width = width;
  st->device = device;
  st->dtype = dtype;
  synchronize(device);
  return st;
}

// A converted model may expect another pixel normalisation than (x/255 − 0.5)/0.5 (= our [-1, 1]
// images): the converter records it as metadata input.normalise "(x - A) / B" on 8-bit pixels x.
// Then images x' = x/127.5 − 1 are mapped to (127.5(x' + 1) − A)/B before the network.
void applyInputMetadata(EncoderState& st, const std::map<std::string, std::string>& metadata) {
  auto it = metadata.find("input");
  if (it == metadata.end()) return;
  std::string norm;
  try {
    auto j = nlohmann::json::parse(it->second);
    if (j.contains("normalise") && j["normalise"].is_string()) norm = j["normalise"].get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return;  // free-form metadata: keep the default protocol
  }
  double a = 0, b = 0;
  char tail = 0;
  if (norm.empty() || std::sscanf(norm.c_str(), "(x - %lf) / %lf%c", &a, &b, &tail) != 2 || b == 0) return;
  st.inputScale = 127.5 / b;
  st.inputShift = (127.5 - a) / b;
  st.inputNormalisation = norm;
}

std::pair<c10::Device, c10::ScalarType> deviceDtype(const Napi::Value& d, const Napi::Value& t) {
  const c10::Device device = parseDevice(d.IsString() ? std::string(d.As<Napi::String>()) : "cpu");
  const c10::ScalarType dtype = parseDtype(t.IsString() ? std::string(t.As<Napi::String>()) : "float32");
  if (dtype != at::kFloat && dtype != at::kHalf && dtype != at::kBFloat16) invalidArgument("the encoder dtype must be float32, float16 or bfloat16");
  return {device, dtype};
}

}  // namespace

Napi::Function EncoderHandle::Init(Napi::Env env) {
  return DefineClass(env, "IdentityEncoder",
                     {
                         InstanceAccessor<&EncoderHandle::Arch>("arch"),
                         InstanceAccessor<&EncoderHandle::Width>("width"),
                         InstanceAccessor<&EncoderHandle::EmbeddingSize>("embeddingSize"),
                         InstanceAccessor<&EncoderHandle::ParameterCount>("parameterCount"),
                         InstanceAccessor<&EncoderHandle::Device>("device"),
                         InstanceAccessor<&EncoderHandle::Dtype>("dtype"),
                         InstanceAccessor<&EncoderHandle::Disposed>("disposed"),
                         InstanceMethod<&EncoderHandle::Dispose>("dispose"),
                         InstanceMethod<&EncoderHandle::StateDict>("stateDict"),
                         InstanceMethod<&EncoderHandle::LoadStateDict>("loadStateDict"),
                         InstanceMethod<&EncoderHandle::Embed>("embed"),
                         InstanceMethod<&EncoderHandle::Save>("save"),
                         InstanceAccessor<&EncoderHandle::InputNormalisation>("inputNormalisation"),
                     });
}

EncoderHandle::EncoderHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EncoderHandle>(info) {
  guarded(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal()) invalidArgument("identity encoders are made by createIdentityEncoder() / loadIdentityEncoder()");
    state_ = *info[0].As<Napi::External<std::shared_ptr<EncoderState>>>().Data();
    return 0;
  });
}

Napi::Object EncoderHandle::Wrap(Napi::Env env, std::shared_ptr<EncoderState> state) {
  auto ext = Napi::External<std::shared_ptr<EncoderState>>::New(env, &state);
  return AddonData::get(env).encoderCtor.New({ext});
}

std::shared_ptr<EncoderState> EncoderHandle::From(Napi::Value value, const char* what) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(AddonData::get(value.Env()).encoderCtor.Value())) {
    invalidArgument(std::string(what) + " must be an IdentityEncoder");
  }
  return Unwrap(value.As<Napi::Object>())->state();
}

std::shared_ptr<EncoderState> EncoderHandle::state() const {
  if (!state_) throw BiaError(ErrorCode::Disposed, "identity encoder was used after dispose()");
  return state_;
}

Napi::Value EncoderHandle::Arch(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), state()->arch); });
}
Napi::Value EncoderHandle::Width(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), state()->width); });
}
Napi::Value EncoderHandle::EmbeddingSize(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(state()->net->embeddingSize())); });
}
Napi::Value EncoderHandle::ParameterCount(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    int64_t n = 0;
    for (const auto& p : state()->net->module().parameters(true)) n += p.numel();
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  });
}
Napi::Value EncoderHandle::Device(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), deviceName(state()->device)); });
}
Napi::Value EncoderHandle::Dtype(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(state()->dtype)); });
}
Napi::Value EncoderHandle::InputNormalisation(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), state()->inputNormalisation); });
}
Napi::Value EncoderHandle::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }
Napi::Value EncoderHandle::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

Napi::Value EncoderHandle::StateDict(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return stateToJs(info.Env(), moduleState(state()->net->module()));
  });
}

Napi::Value EncoderHandle::LoadStateDict(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    bia::StateDict entries = stateFromJs(info[0]);
    const bool strict = info[1].IsUndefined() ? true : info[1].ToBoolean().Value();
    return startJob(info.Env(), info[2], "bia.identity.load", [st, entries, strict](JobContext&) -> Finisher {
      loadStateDictInto(st->net->module(), entries, strict);
      synchronize(st->device);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  });
}

Napi::Value EncoderHandle::Embed(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    at::Tensor x = TensorHandle::From(info[0], "images");
    Napi::Object o = optObject(info[1], "options");
    const Protocol p = parseProtocol(optString(o, "protocol", "bia"));
    const bool normalize = optBool(o, "normalize", true);
    checkProtocolInput(x.sizes(), p);
    if (!x.is_floating_point()) invalidArgument("images must be a floating-point tensor in [-1, 1]");
    return startJob(info.Env(), info[2], "bia.identity.embed", [st, x, p, normalize](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      if (!at::isfinite(x).all().item<bool>()) invalidArgument("images contain NaN or Inf");
      at::Tensor xx = x.to(st->device, st->dtype);
      if (st->inputScale != 1.0 || st->inputShift != 0.0) xx = xx * st->inputScale + st->inputShift;
      at::Tensor e = embed(*st->net, xx, p, normalize).contiguous();
      synchronize(st->device);
      return [e](Napi::Env env) -> Napi::Value { return TensorHandle::Wrap(env, e); };
    });
  });
}

Napi::Value EncoderHandle::Save(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    const std::string path = pathFromJs(info[0]);
    std::map<std::string, std::string> metadata = metadataFromJs(info[1]);
    metadata["arch"] = st->arch;
    return startJob(info.Env(), info[2], "bia.identity.save", [st, path, metadata](JobContext&) -> Finisher {
      writeSafetensors(path, forSaving(moduleState(st->net->module())), metadata);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  });
}

Napi::Value CreateIdentityEncoder(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsString()) invalidArgument("arch must be a string");
    const std::string arch = info[0].As<Napi::String>();
    const double width = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 1.0;
    const int64_t embeddingSize = info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : 512;
    const uint64_t seed = info[3].IsNumber() ? static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value()) : 0;
    auto [device, dtype] = deviceDtype(info[4], info[5]);
    validateArch(arch, width, embeddingSize);
    return startJob(info.Env(), info[6], "bia.identity.create", [arch, width, embeddingSize, seed, device = device, dtype = dtype](JobContext&) -> Finisher {
      torch::manual_seed(seed);
      auto st = finish(makeIdentityNet(arch, width, embeddingSize), arch, width, device, dtype);
      return [st](Napi::Env env) -> Napi::Value { return EncoderHandle::Wrap(env, st); };
    });
  });
}

Napi::Value LoadIdentityEncoder(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathFromJs(info[0]);
    std::string arch = info[1].IsString() ? std::string(info[1].As<Napi::String>()) : "";
    auto [device, dtype] = deviceDtype(info[2], info[3]);
    const bool strict = info[4].IsUndefined() ? true : info[4].ToBoolean().Value();
    return startJob(info.Env(), info[5], "bia.identity.loadFile", [path, arch, device = device, dtype = dtype, strict](JobContext& ctx) -> Finisher {
      Checkpoint ck = readForLoading(path, ctx);
      Inferred inf = inferArch(ck.tensors, path);
      if (!arch.empty() && arch != inf.arch) {
        throw BiaError(ErrorCode::CheckpointMismatch, path + " holds a " + inf.arch + " checkpoint, not " + arch);
      }
      auto net = makeIdentityNet(inf.arch, inf.width, inf.embeddingSize);
      try {
        loadStateDictInto(net->module(), ck.tensors, strict);
      } catch (const BiaError& e) {
        if (e.code() != ErrorCode::CheckpointMismatch) throw;
        throw BiaError(ErrorCode::CheckpointMismatch, path + " (" + inf.arch + "): " + e.what());
      }
      releaseCheckpoint(ck);
      auto st = finish(net, inf.arch, inf.width, device, dtype);
      applyInputMetadata(*st, ck.metadata);
      return [st](Napi::Env env) -> Napi::Value { return EncoderHandle::Wrap(env, st); };
    });
  });
}

Napi::Value CosineSimilarity(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor a = TensorHandle::From(info[0], "a");
    at::Tensor b = TensorHandle::From(info[1], "b");
    const bool matrix = info[2].ToBoolean();
    if (a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(1)) {
      invalidArgument("similarity needs embeddings [N, D] and [M, D] of the same D; got " + shapeStr(a.sizes()) + " and " + shapeStr(b.sizes()));
    }
    if (!matrix && a.size(0) != b.size(0) && a.size(0) != 1 && b.size(0) != 1) {
      invalidArgument("pairwise similarity needs equal batches (or one of 1); use matrix: true for all pairs");
    }
    return startJob(info.Env(), info[3], "bia.identity.similarity", [a, b, matrix](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor an = l2normalize(a.to(at::kFloat)), bn = l2normalize(b.to(at::kFloat).to(a.device()));
      at::Tensor s = matrix ? at::mm(an, bn.t()) : (an * bn).sum(1);
      s = s.contiguous();
      synchronize(s.device());
      return [s](Napi::Env env) -> Napi::Value { return TensorHandle::Wrap(env, s); };
    });
  });
}

}  // namespace bia
