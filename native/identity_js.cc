#include "identity_js.h"

#include "args.h"
#include "device.h"
#include "errors.h"
#include "job.h"
#include "tensor_js.h"

namespace bia {

namespace {

std::string shapeStr(at::IntArrayRef s) { return c10::str(s); }

using State = std::shared_ptr<EncoderState>;

Napi::Value arch(Napi::Env env, const State& st) { return Napi::String::New(env, st->arch); }
Napi::Value width(Napi::Env env, const State& st) { return Napi::Number::New(env, st->width); }
Napi::Value embeddingSize(Napi::Env env, const State& st) { return Napi::Number::New(env, static_cast<double>(st->net->embeddingSize())); }
Napi::Value inputNormalisation(Napi::Env env, const State& st) { return Napi::String::New(env, st->inputNormalisation); }

Napi::Value embed(const Napi::CallbackInfo& info, const State& st) {
  at::Tensor x = TensorHandle::From(info[0], "images");
  Napi::Object o = optObject(info[1], "options");
  const Protocol p = parseProtocol(optString(o, "protocol", "bia"));
  const bool normalize = optBool(o, "normalize", true);
  checkProtocolInput(x.sizes(), p);
  if (!x.is_floating_point()) invalidArgument("images must be a floating-point tensor in [-1, 1]");
  return startJob(info.Env(), info[2], "bia.identity.embed", [st, x, p, normalize](JobContext&) -> Finisher {
    return tensorResult(encoderEmbed(*st, x, p, normalize));
  });
}

}  // namespace

std::vector<EncoderHandle::Property> EncoderHandle::properties() {
  return ModelProperties({Getter<&arch>("arch"), Getter<&width>("width"), Getter<&embeddingSize>("embeddingSize")},
                         {AsyncMethod<&embed>("embed"), SaveMethod(), Getter<&inputNormalisation>("inputNormalisation")});
}

Napi::Value CreateIdentityEncoder(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsString()) invalidArgument("arch must be a string");
    const std::string arch = info[0].As<Napi::String>();
    const double width = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 1.0;
    const int64_t embeddingSize = info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : 512;
    const uint64_t seed = info[3].IsNumber() ? static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value()) : 0;
    auto [device, dtype] = modelPlacementFromJs(info[4], info[5], "the encoder dtype");
    validateArch(arch, width, embeddingSize);
    return startJob(info.Env(), info[6], "bia.identity.create", [arch, width, embeddingSize, seed, device = device, dtype = dtype](JobContext&) -> Finisher {
      auto st = createEncoder(arch, width, embeddingSize, seed, device, dtype);
      return [st](Napi::Env env) -> Napi::Value { return EncoderHandle::Wrap(env, st); };
    });
  });
}

Napi::Value LoadIdentityEncoder(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathFromJs(info[0]);
    std::string arch = info[1].IsString() ? std::string(info[1].As<Napi::String>()) : "";
    auto [device, dtype] = modelPlacementFromJs(info[2], info[3], "the encoder dtype");
    const bool strict = info[4].IsUndefined() ? true : info[4].ToBoolean().Value();
    return startJob(info.Env(), info[5], "bia.identity.loadFile", [path, arch, device = device, dtype = dtype, strict](JobContext& ctx) -> Finisher {
      auto st = loadEncoder(path, arch, device, dtype, strict, ctx);
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
      return tensorResult(cosineSimilarity(a, b, matrix));
    });
  });
}

}  // namespace bia
