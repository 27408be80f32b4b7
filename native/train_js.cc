// The Trainer handle and the addon's createTrainer / arcfaceLogits (see train_js.h).
#include "train_js.h"

#include <c10/core/InferenceMode.h>

#include "args.h"
#include "device.h"
#include "diffusion_js.h"
#include "errors.h"
#include "identity_js.h"
#include "job.h"
#include "tensor_js.h"

namespace bia {

namespace {

std::string shapeStr(at::IntArrayRef s) { return c10::str(s); }

TrainerOptions trainerOptionsFromJs(Napi::Value v, TrainTarget target, bool& emaWarmup) {
  Napi::Object o = optObject(v, "options");
  TrainerOptions t;
  t.adam.lr = optNumber(o, "lr", 1e-3);
  t.adam.weightDecay = optNumber(o, "weightDecay", 0.0);
  t.adam.eps = optNumber(o, "eps", 1e-8);
  if (o.Has("betas") && !o.Get("betas").IsUndefined()) {
    Napi::Value b = o.Get("betas");
    if (!b.IsArray() || b.As<Napi::Array>().Length() != 2 || !b.As<Napi::Array>().Get(0u).IsNumber() || !b.As<Napi::Array>().Get(1u).IsNumber()) {
      invalidArgument("betas must be [beta1, beta2]");
    }
    t.adam.beta1 = b.As<Napi::Array>().Get(0u).As<Napi::Number>().DoubleValue();
    t.adam.beta2 = b.As<Napi::Array>().Get(1u).As<Napi::Number>().DoubleValue();
  }
  if (!(t.adam.lr >= 0 && t.adam.lr < 10)) invalidArgument("lr must be in [0, 10)");
  if (!(t.adam.weightDecay >= 0 && t.adam.weightDecay < 10)) invalidArgument("weightDecay must be in [0, 10)");
  if (!(t.adam.eps > 0 && t.adam.eps < 1)) invalidArgument("eps must be in (0, 1)");
  if (!(t.adam.beta1 >= 0 && t.adam.beta1 < 1 && t.adam.beta2 >= 0 && t.adam.beta2 < 1)) invalidArgument("betas must be in [0, 1)");
  t.emaDecay = optNumber(o, "emaDecay", 0.0);
  if (!(t.emaDecay >= 0 && t.emaDecay < 1)) invalidArgument("emaDecay must be in [0, 1) (0 turns EMA off)");
  emaWarmup = optBool(o, "emaWarmup", false);
  t.channelsLast = optBool(o, "channelsLast", false);
  if (o.Has("trainable") && !o.Get("trainable").IsUndefined()) {
    Napi::Value v = o.Get("trainable");
    if (!v.IsArray()) invalidArgument("trainable must be an array of parameter-name prefixes");
    Napi::Array a = v.As<Napi::Array>();
    if (a.Length() > 256) invalidArgument("trainable may hold at most 256 prefixes");
    for (uint32_t i = 0; i < a.Length(); i++) {
      if (!a.Get(i).IsString() || a.Get(i).As<Napi::String>().Utf8Value().empty()) invalidArgument("trainable must hold non-empty strings");
      t.trainable.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    }
  }
  t.adapterRank = optInt(o, "adapterRank", 0, 0, 1024);
  t.adapterAlpha = optNumber(o, "adapterAlpha", 0.0);
  if (!(t.adapterAlpha >= 0 && t.adapterAlpha <= 1e4)) invalidArgument("adapterAlpha must be in [0, 10000] (0: the rank)");
  t.seed = static_cast<uint64_t>(optInt(o, "seed", 0, 0, int64_t{1} << 52));
  t.gradClip = optNumber(o, "gradClip", 0.0);
  if (t.gradClip < 0) invalidArgument("gradClip must be >= 0 (0: no clipping)");
  t.classes = optInt(o, "classes", 0, 0, int64_t{1} << 24);
  t.auxDim = optInt(o, "auxDim", 0, 0, 65536);
  t.auxWeight = optNumber(o, "auxWeight", 1.0);
  if (t.auxWeight < 0) invalidArgument("auxWeight must be >= 0");
  t.scale = optNumber(o, "scale", 32.0);
  if (!(t.scale > 0 && t.scale <= 1024)) invalidArgument("scale must be in (0, 1024]");
  t.flip = optBool(o, "flip", false);
  t.blur = optNumber(o, "blur", 0.0);
  if (!(t.blur >= 0 && t.blur <= 16)) invalidArgument("blur must be in [0, 16] (pixels)");
  t.blurProb = optNumber(o, "blurProb", 0.5);
  if (!(t.blurProb >= 0 && t.blurProb <= 1)) invalidArgument("blurProb must be in [0, 1]");
  t.noise = optNumber(o, "noise", 0.0);
  if (!(t.noise >= 0 && t.noise <= 4)) invalidArgument("noise must be in [0, 4]");
  t.device = parseDevice(optString(o, "device", "cpu"));
  if (target == TrainTarget::Encoder && t.classes == 0 && t.auxDim == 0) {
    invalidArgument("an encoder trainer needs classes (the ArcFace head) and/or auxDim (the auxiliary regression head)");
  }
  if (target == TrainTarget::Encoder && t.classes == 1) invalidArgument("classes must be at least 2");
  if (target != TrainTarget::Encoder && (t.classes != 0 || t.auxDim != 0)) invalidArgument("classes and auxDim are options of the encoder target");
  if (target == TrainTarget::Encoder && t.channelsLast && t.device.is_cpu()) {
    // Measured here: LibTorch 1.13's CPU backward of a 1x1 stride-2 convolution (the encoders'
    // downsample shortcuts) in channels_last corrupts the heap (also from Python on the same build).
    invalidArgument("channelsLast training of identity encoders is refused on the CPU: LibTorch 1.13's CPU backward of 1x1 stride-2 convolutions in channels_last corrupts memory");
  }
  if (target == TrainTarget::Diffusion && (t.blur != 0 || t.noise != 0)) invalidArgument("blur and noise augmentation are for the encoder and attribute targets");
  return t;
}

TrainTarget parseTarget(Napi::Value v) {
  const std::string s = v.IsString() ? std::string(v.As<Napi::String>()) : "";
  if (auto target = parseTrainTarget(s)) return *target;
  invalidArgument("target must be 'diffusion', 'encoder' or 'attributes'; got '" + s + "'");
}

ModelSpec modelSpecFromJs(Napi::Value v, TrainTarget target) {
  Napi::Object o = optObject(v, "model");
  ModelSpec s;
  switch (target) {
    case TrainTarget::Diffusion: s.unet = unetConfigFromJs(o.Get("config")); break;
    case TrainTarget::Encoder:
      s.arch = optString(o, "arch", "");
      s.width = optNumber(o, "width", 1.0);
      s.embeddingSize = optInt(o, "embeddingSize", 512, 1, 65536);
      validateArch(s.arch, s.width, s.embeddingSize);
      break;
    case TrainTarget::Attributes: s.attributes = attributeConfigFromJs(o.Get("config")); break;
  }
  if (!o.Get("weights").IsUndefined()) s.weights = stateFromJs(o.Get("weights"));
  return s;
}

Napi::Object resultToJs(Napi::Env env, const StepResult& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", r.loss);
  Napi::Object parts = Napi::Object::New(env);
  for (const auto& p : r.parts) parts.Set(p.first, p.second);
  out.Set("parts", parts);
  out.Set("seconds", r.seconds);
  out.Set("step", static_cast<double>(r.step));
  out.Set("images", static_cast<double>(r.images));
  return out;
}

TrainBatch batchFromJs(Napi::Value v) {
  Napi::Object o = optObject(v, "batch");
  TrainBatch b;
  b.images = TensorHandle::From(o.Get("images"), "batch.images");
  if (!o.Get("labels").IsUndefined() && !o.Get("labels").IsNull()) b.labels = TensorHandle::From(o.Get("labels"), "batch.labels");
  if (!o.Get("targets").IsUndefined() && !o.Get("targets").IsNull()) b.targets = TensorHandle::From(o.Get("targets"), "batch.targets");
  if (!o.Get("identity").IsUndefined() && !o.Get("identity").IsNull()) {
    // {encoder, embeddings?, keep?, weight, margin, keepWeight, protocol}: identity terms on x̂0 (train.h)
    Napi::Object id = optObject(o.Get("identity"), "batch.identity");
    if (!id.Get("embeddings").IsUndefined()) b.identity = TensorHandle::From(id.Get("embeddings"), "batch.identity.embeddings");
    if (!id.Get("keep").IsUndefined()) b.identityKeep = TensorHandle::From(id.Get("keep"), "batch.identity.keep");
    b.identityEncoder = EncoderHandle::From(id.Get("encoder"), "batch.identity.encoder");
    b.identityWeight = optNumber(id, "weight", 1.0);
    b.identityKeepWeight = optNumber(id, "keepWeight", 1.0);
    b.identityMargin = optNumber(id, "margin", 0.0);
    b.identityProtocol = parseProtocol(optString(id, "protocol", "resize"));
  }
  return b;
}

// The batch of trainStep() and evaluate(), checked against the trainer (JS thread).
TrainBatch checkedBatch(const TrainerState& st, Napi::Value v) {
  TrainBatch b = batchFromJs(v);
  st.checkBatch(b);
  return b;
}

double marginFromJs(const Napi::Object& o) {
  const double margin = optNumber(o, "margin", 0.0);
  if (!(margin >= 0 && margin < 1.5)) invalidArgument("margin must be in [0, 1.5) radians");
  return margin;
}

Finisher stepResult(const StepResult& r) {
  return [r](Napi::Env env) -> Napi::Value { return resultToJs(env, r); };
}

using State = std::shared_ptr<TrainerState>;

Napi::Value target(Napi::Env env, const State& st) { return Napi::String::New(env, targetName(st->target)); }
// The optimiser's step count as of the last finished job (steps run on the compute thread).
Napi::Value stepCount(Napi::Env env, const State& st) { return Napi::Number::New(env, static_cast<double>(st->optimizer->steps())); }
Napi::Value info(Napi::Env env, const State& st) { return Napi::String::New(env, st->infoJson()); }

// (batch, {lr, margin}, jobOpts) → {loss, parts, seconds, step, images}
Napi::Value trainStep(const Napi::CallbackInfo& info, const State& st) {
  TrainBatch b = checkedBatch(*st, info[0]);
  Napi::Object o = optObject(info[1], "step options");
  const double lr = optNumber(o, "lr", st->options.adam.lr);
  if (!(lr >= 0 && lr < 10)) invalidArgument("lr must be in [0, 10)");
  const double margin = marginFromJs(o);
  return startJob(info.Env(), info[2], "bia.train.step", [st, b, lr, margin](JobContext& ctx) -> Finisher {
    ctx.checkAbort();
    return stepResult(st->trainStep(b, lr, margin));
  });
}

// A job over evaluate()'s arguments (batch, {margin, seed}, jobOpts): `run` gets the state, batch, margin
// and seed on the compute thread.
template <typename Run>
Napi::Value evaluationJob(const Napi::CallbackInfo& info, const State& st, const char* name, Run run) {
  TrainBatch b = checkedBatch(*st, info[0]);
  Napi::Object o = optObject(info[1], "evaluate options");
  const double margin = marginFromJs(o);
  const uint64_t seed = static_cast<uint64_t>(optInt(o, "seed", 0, 0, int64_t{1} << 52));
  return startJob(info.Env(), info[2], name, [st, b, margin, seed, run](JobContext& ctx) -> Finisher {
    ctx.checkAbort();
    return run(*st, b, margin, seed);
  });
}

// (batch, {margin, seed}, jobOpts) → {loss, parts, seconds, step, images}
Napi::Value evaluate(const Napi::CallbackInfo& info, const State& st) {
  return evaluationJob(info, st, "bia.train.evaluate", [](TrainerState& s, const TrainBatch& b, double margin, uint64_t seed) {
    return stepResult(s.evaluate(b, margin, seed));
  });
}

// (batch, {margin, seed}, jobOpts) → [[name, gradient]] of evaluate()'s loss
Napi::Value gradients(const Napi::CallbackInfo& info, const State& st) {
  return evaluationJob(info, st, "bia.train.gradients", [](TrainerState& s, const TrainBatch& b, double margin, uint64_t seed) -> Finisher {
    StateDict g = s.gradients(b, margin, seed);
    return [g](Napi::Env env) -> Napi::Value { return stateToJs(env, g); };
  });
}

// (path, metadata, jobOpts) → the number of adapted layers written (the adapter patch, lora.h)
Napi::Value saveAdapter(const Napi::CallbackInfo& info, const State& st) {
  const std::string path = pathFromJs(info[0]);
  std::map<std::string, std::string> user = metadataFromJs(info[1]);
  if (st->lora.empty()) invalidArgument("this trainer has no adapters (create it with adapterRank > 0)");
  if (st->target == TrainTarget::Diffusion) user[kUNetConfigKey] = unetConfigToJson(st->unet->config());
  return startJob(info.Env(), info[2], "bia.train.saveAdapter", [st, path, user](JobContext& ctx) -> Finisher {
    writeLoraPatch(path, st->lora, user, ctx);
    const double n = static_cast<double>(st->lora.adapters.size());
    return [n](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, n); };
  });
}

// (path, metadata, jobOpts) → the step count written
Napi::Value save(const Napi::CallbackInfo& info, const State& st) {
  const std::string path = pathFromJs(info[0]);
  std::map<std::string, std::string> user = metadataFromJs(info[1]);
  return startJob(info.Env(), info[2], "bia.train.save", [st, path, user](JobContext& ctx) -> Finisher {
    const int64_t step = st->save(path, user, ctx);
    return [step](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(step)); };
  });
}

// (path, jobOpts) → {step, metadata}
Napi::Value load(const Napi::CallbackInfo& info, const State& st) {
  const std::string path = pathFromJs(info[0]);
  return startJob(info.Env(), info[1], "bia.train.load", [st, path](JobContext& ctx) -> Finisher {
    std::map<std::string, std::string> user = st->restore(path, ctx);
    const int64_t step = st->optimizer->steps();
    return [user, step](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("step", static_cast<double>(step));
      Napi::Object md = Napi::Object::New(env);
      for (const auto& e : user) md.Set(e.first, e.second);
      out.Set("metadata", md);
      return out;
    };
  });
}

// ({ema}, jobOpts) → DiffusionModel | IdentityEncoder | AttributeEstimator
Napi::Value model(const Napi::CallbackInfo& info, const State& st) {
  Napi::Object o = optObject(info[0], "model options");
  const bool useEma = optBool(o, "ema", true);
  return startJob(info.Env(), info[1], "bia.train.model", [st, useEma](JobContext&) -> Finisher {
    TrainedModel m = trainedModel(*st, useEma);
    return [m](Napi::Env env) -> Napi::Value {
      if (m.diffusion) return DiffusionHandle::Wrap(env, m.diffusion);
      if (m.encoder) return EncoderHandle::Wrap(env, m.encoder);
      return AttributeHandle::Wrap(env, m.attributes);
    };
  });
}

// (jobOpts) → [[name, Tensor]] copies, checkpoint layout
Napi::Value snapshot(const Napi::CallbackInfo& info, const State& st) {
  return startJob(info.Env(), info[0], "bia.train.snapshot", [st](JobContext&) -> Finisher {
    StateDict s = st->checkpointState();
    for (auto& e : s) e.second = e.second.clone();  // never aliases the live tensors
    return [s](Napi::Env env) -> Napi::Value { return stateToJs(env, s); };
  });
}

}  // namespace

std::vector<TrainerHandle::Property> TrainerHandle::properties() {
  return {Getter<&target>("target"), Getter<&stepCount>("step"), Getter<&info>("info"), DisposedAccessor(), DisposeMethod(),
          AsyncMethod<&trainStep>("trainStep"), AsyncMethod<&evaluate>("evaluate"), AsyncMethod<&save>("save"), AsyncMethod<&load>("load"),
          AsyncMethod<&model>("model"), AsyncMethod<&snapshot>("snapshot"), AsyncMethod<&gradients>("gradients"),
          AsyncMethod<&saveAdapter>("saveAdapter")};
}

Napi::Value CreateTrainer(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const TrainTarget target = parseTarget(info[0]);
    ModelSpec spec = modelSpecFromJs(info[1], target);
    bool emaWarmup = false;
    TrainerOptions o = trainerOptionsFromJs(info[2], target, emaWarmup);
    return startJob(info.Env(), info[3], "bia.train.create", [target, spec, o, emaWarmup](JobContext&) -> Finisher {
      auto st = buildTrainer(target, spec, o, emaWarmup);
      return [st](Napi::Env env) -> Napi::Value { return TrainerHandle::Wrap(env, st); };
    });
  });
}

Napi::Value ArcfaceLogits(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    at::Tensor e = TensorHandle::From(info[0], "embeddings");
    at::Tensor w = TensorHandle::From(info[1], "weight");
    at::Tensor labels = TensorHandle::From(info[2], "labels");
    if (e.dim() != 2 || w.dim() != 2 || e.size(1) != w.size(1)) {
      invalidArgument("arcface logits need embeddings [B, D] and weight [C, D]; got " + shapeStr(e.sizes()) + " and " + shapeStr(w.sizes()));
    }
    if (labels.dim() != 1 || labels.size(0) != e.size(0) || labels.is_floating_point()) invalidArgument("labels must be an integer [B] tensor");
    if (!info[3].IsNumber() || !info[4].IsNumber()) invalidArgument("margin and scale must be numbers");
    const double margin = info[3].As<Napi::Number>().DoubleValue(), scale = info[4].As<Napi::Number>().DoubleValue();
    if (!(margin >= 0 && margin < 1.5)) invalidArgument("margin must be in [0, 1.5) radians");
    if (!(scale > 0)) invalidArgument("scale must be positive");
    return startJob(info.Env(), info[5], "bia.train.arcface", [e, w, labels, margin, scale](JobContext&) -> Finisher {
      c10::InferenceMode guard;
      at::Tensor l = labels.to(e.device(), at::kLong);
      const int64_t lo = l.min().item<int64_t>(), hi = l.max().item<int64_t>();
      if (lo < 0 || hi >= w.size(0)) invalidArgument("labels must be in [0, " + std::to_string(w.size(0)) + ")");
      at::Tensor out = arcfaceLogits(e.to(at::kFloat), w.to(e.device(), at::kFloat), l, margin, scale).contiguous();
      return tensorResult(out);
    });
  });
}

}  // namespace bia
