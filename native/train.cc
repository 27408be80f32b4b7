// The Trainer (see train.h): state, AdamW, EMA, checkpoints and the JS handle. The per-target
// losses and the batch augmentation are in train_losses.cc.
#include "train.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <set>

#include "addon_data.h"
#include "args.h"
#include "device.h"
#include "diffusion.h"
#include "errors.h"
#include "identity.h"
#include "job.h"
#include "module_io.h"
#include "tensor.h"
#include "ddim.h"

namespace bia {

using Json = nlohmann::json;

const char* targetName(TrainTarget t) {
  switch (t) {
    case TrainTarget::Diffusion: return "diffusion";
    case TrainTarget::Encoder: return "encoder";
    case TrainTarget::Attributes: return "attributes";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// AdamW

AdamW::AdamW(StateDict params) : params_(std::move(params)) {
  torch::NoGradGuard noGrad;
  for (const auto& p : params_) {
    expAvg_.push_back(at::zeros_like(p.second));
    expAvgSq_.push_back(at::zeros_like(p.second));
  }
}

void AdamW::step(const AdamWHyper& h) {
  torch::NoGradGuard noGrad;
  steps_++;
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(steps_));
  const double stepSize = h.lr / bc1;
  const double bc2Sqrt = std::sqrt(bc2);
  for (size_t i = 0; i < params_.size(); i++) {
    at::Tensor p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;  // took no part in this step's loss
    if (h.weightDecay != 0 && p.dim() >= 2) p.mul_(1.0 - h.lr * h.weightDecay);
    expAvg_[i].mul_(h.beta1).add_(g, 1.0 - h.beta1);
    expAvgSq_[i].mul_(h.beta2).addcmul_(g, g, 1.0 - h.beta2);
    at::Tensor denom = (expAvgSq_[i].sqrt() / bc2Sqrt).add_(h.eps);
    p.addcdiv_(expAvg_[i], denom, -stepSize);
  }
}

// ---------------------------------------------------------------------------------------------
// Trainer state

torch::nn::Module& TrainerState::module() {
  switch (target) {
    case TrainTarget::Diffusion: return *unet;
    case TrainTarget::Encoder: return encoder->module();
    case TrainTarget::Attributes: return *attributes;
  }
  throw BiaError(ErrorCode::Other, "unknown training target");
}

std::string TrainerState::modelJson() const {
  switch (target) {
    case TrainTarget::Diffusion: return unetConfigToJson(unet->config());
    case TrainTarget::Encoder: return Json{{"arch", arch}, {"width", width}, {"embeddingSize", encoder->embeddingSize()}}.dump();
    case TrainTarget::Attributes: return attributes->config().toJson();
  }
  return "{}";
}

std::string TrainerState::optionsJson() const {
  const TrainerOptions& o = options;
  return Json{{"lr", o.adam.lr}, {"beta1", o.adam.beta1}, {"beta2", o.adam.beta2}, {"eps", o.adam.eps}, {"weightDecay", o.adam.weightDecay},
              {"emaDecay", o.emaDecay}, {"emaWarmup", emaWarmup}, {"channelsLast", o.channelsLast}, {"seed", o.seed},
              {"gradClip", o.gradClip}, {"classes", o.classes}, {"auxDim", o.auxDim}, {"auxWeight", o.auxWeight},
              {"scale", o.scale}, {"flip", o.flip}, {"blur", o.blur}, {"blurProb", o.blurProb}, {"noise", o.noise}}.dump();
}

namespace {

constexpr const char* kTrainerKey = "bia.trainer";
constexpr const char* kStepKey = "optim.step";

void toChannelsLast(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& p : m.parameters(true)) if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

}  // namespace

StateDict TrainerState::liveState() {
  StateDict out = moduleState(module());
  if (head) for (const auto& p : head->named_parameters(true)) out.emplace_back("head." + p.key(), p.value());
  for (const auto& e : ema) out.emplace_back("ema." + e.first, e.second);
  const StateDict& params = optimizer->params();
  for (size_t i = 0; i < params.size(); i++) out.emplace_back("optim.exp_avg." + params[i].first, optimizer->expAvg()[i]);
  for (size_t i = 0; i < params.size(); i++) out.emplace_back("optim.exp_avg_sq." + params[i].first, optimizer->expAvgSq()[i]);
  return out;
}

StateDict TrainerState::checkpointState() {
  StateDict out = forSaving(liveState());
  out.emplace_back(kStepKey, at::full({1}, optimizer->steps(), at::TensorOptions().dtype(at::kLong)));
  return out;
}

std::map<std::string, std::string> TrainerState::checkpointMetadata(std::map<std::string, std::string> user) const {
  Json j{{"target", targetName(target)}, {"step", optimizer->steps()}, {"model", Json::parse(modelJson())}, {"options", Json::parse(optionsJson())}, {"version", 1}};
  user[kTrainerKey] = j.dump();
  switch (target) {
    case TrainTarget::Diffusion: user[kUNetConfigKey] = unetConfigToJson(unet->config()); break;
    case TrainTarget::Encoder: user["arch"] = arch; break;
    case TrainTarget::Attributes: user["bia.attributes.config"] = attributes->config().toJson(); break;
  }
  user["format"] = "pt";
  return user;
}

std::map<std::string, std::string> TrainerState::restore(const std::string& path, JobContext& ctx) {
  Checkpoint ck = readForLoading(path, ctx);
  auto it = ck.metadata.find(kTrainerKey);
  if (it == ck.metadata.end()) {
    throw BiaError(ErrorCode::CheckpointMismatch, path + " is not a trainer checkpoint (no " + kTrainerKey + " metadata): to start from a model's weights, pass the model to createTrainer()");
  }
  Json meta;
  try {
    meta = Json::parse(it->second);
  } catch (const Json::exception& e) {
    throw BiaError(ErrorCode::Checkpoint, path + ": the " + kTrainerKey + " metadata is not JSON: " + e.what());
  }
  const std::string fileTarget = meta.value("target", "");
  if (fileTarget != targetName(target)) {
    throw BiaError(ErrorCode::CheckpointMismatch, path + " is a checkpoint of a '" + fileTarget + "' trainer, not of a '" + targetName(target) + "' trainer");
  }
  if (!meta.contains("model") || meta["model"] != Json::parse(modelJson())) {
    throw BiaError(ErrorCode::CheckpointMismatch, path + " holds another model: " + (meta.contains("model") ? meta["model"].dump() : "?") +
                   " (this trainer: " + modelJson() + ")");
  }
  std::map<std::string, const at::Tensor*> given;
  for (const auto& e : ck.tensors) given[e.first] = &e.second;
  auto stepIt = given.find(kStepKey);
  if (stepIt == given.end() || stepIt->second->numel() != 1) throw BiaError(ErrorCode::CheckpointMismatch, path + ": no " + kStepKey + " tensor");
  StateDict live = liveState();
  std::vector<std::string> missing, misShaped;
  std::set<std::string> own{kStepKey};
  for (const auto& e : live) {
    own.insert(e.first);
    auto g = given.find(e.first);
    if (g == given.end()) missing.push_back(e.first);
    else if (g->second->sizes() != e.second.sizes()) misShaped.push_back(e.first + " (checkpoint " + c10::str(g->second->sizes()) + ", trainer " + c10::str(e.second.sizes()) + ")");
  }
  std::vector<std::string> unexpected;
  for (const auto& g : given) if (!own.count(g.first)) unexpected.push_back(g.first);
  if (!missing.empty() || !misShaped.empty() || !unexpected.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 4; i++) s += (i ? ", " : "") + v[i];
      if (v.size() > 4) s += ", … (" + std::to_string(v.size()) + " in all)";
      return s;
    };
    std::string msg = path + " does not fit this trainer (were EMA, the heads or the classes configured differently?)";
    if (!missing.empty()) msg += "; missing: " + list(missing);
    if (!unexpected.empty()) msg += "; unexpected: " + list(unexpected);
    if (!misShaped.empty()) msg += "; wrong shape: " + list(misShaped);
    throw BiaError(ErrorCode::CheckpointMismatch, msg);
  }
  {
    torch::NoGradGuard noGrad;
    for (auto& e : live) e.second.copy_(*given.at(e.first));
  }
  optimizer->setSteps(stepIt->second->to(at::kLong).item<int64_t>());
  std::map<std::string, std::string> user = ck.metadata;
  user.erase(kTrainerKey);
  releaseCheckpoint(ck);
  synchronize(options.device);
  return user;
}

void TrainerState::updateEma() {
  if (ema.empty()) return;
  torch::NoGradGuard noGrad;
  const double k = static_cast<double>(optimizer->steps());
  const double d = emaWarmup ? std::min(options.emaDecay, (1.0 + k) / (10.0 + k)) : options.emaDecay;
  size_t i = 0;
  for (const auto& p : module().named_parameters(true)) ema[i++].second.mul_(d).add_(p.value().detach(), 1.0 - d);
  for (const auto& b : module().named_buffers(true)) ema[i++].second.copy_(b.value());
}

// The trained network as a new module (a copy): EMA weights when asked and present.
StateDict TrainerState::weightsForModel(bool useEma) {
  StateDict out;
  if (useEma && !ema.empty()) {
    for (const auto& e : ema) out.emplace_back(e.first, e.second);
  } else {
    out = moduleState(module());
  }
  return out;
}

namespace {

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
  if (s == "diffusion") return TrainTarget::Diffusion;
  if (s == "encoder") return TrainTarget::Encoder;
  if (s == "attributes") return TrainTarget::Attributes;
  invalidArgument("target must be 'diffusion', 'encoder' or 'attributes'; got '" + s + "'");
}

struct ModelSpec {
  UNetConfig unet;
  std::string arch;
  double width = 1.0;
  int64_t embeddingSize = 512;
  AttributeConfig attributes;
  StateDict weights;
};

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
    case TrainTarget::Attributes: {
      Napi::Object c = optObject(o.Get("config"), "config");
      s.attributes.inChannels = optInt(c, "inChannels", 3, 1, 64);
      s.attributes.outputs = optInt(c, "outputs", 8, 1, 65536);
      s.attributes.width = optInt(c, "width", 32, 1, 1024);
      s.attributes.stages = optInt(c, "stages", 4, 1, 8);
      s.attributes.validate();
      break;
    }
  }
  if (!o.Get("weights").IsUndefined()) s.weights = stateFromJs(o.Get("weights"));
  return s;
}

std::shared_ptr<TrainerState> buildTrainer(TrainTarget target, const ModelSpec& spec, const TrainerOptions& o, bool emaWarmup) {
  auto st = std::make_shared<TrainerState>();
  st->target = target;
  st->options = o;
  st->emaWarmup = emaWarmup;
  torch::manual_seed(o.seed);
  switch (target) {
    case TrainTarget::Diffusion: st->unet = UNet(spec.unet); break;
    case TrainTarget::Encoder:
      st->encoder = makeIdentityNet(spec.arch, spec.width, spec.embeddingSize);
      st->arch = spec.arch;
      st->width = spec.width;
      break;
    case TrainTarget::Attributes: st->attributes = AttributeNet(spec.attributes); break;
  }
  torch::nn::Module& m = st->module();
  if (!spec.weights.empty()) loadStateDictInto(m, spec.weights, true);
  m.eval();
  m.to(o.device);
  if (o.channelsLast) toChannelsLast(m);
  for (auto& p : m.parameters(true)) p.set_requires_grad(true);
  if (target == TrainTarget::Encoder) {
    st->head = std::make_shared<torch::nn::Module>();
    const int64_t d = spec.embeddingSize;
    if (o.classes > 0) {
      auto arc = container(*st->head, "arcface");
      st->arcWeight = arc->register_parameter("weight", at::randn({o.classes, d}) * 0.01);
    }
    if (o.auxDim > 0) st->aux = st->head->register_module("aux", torch::nn::Linear(d, o.auxDim));
    st->head->to(o.device);
  }
  StateDict trainable;
  for (const auto& p : m.named_parameters(true)) trainable.emplace_back(p.key(), p.value());
  if (st->head) for (const auto& p : st->head->named_parameters(true)) trainable.emplace_back("head." + p.key(), p.value());
  st->optimizer = std::make_unique<AdamW>(trainable);
  if (o.emaDecay > 0) {
    torch::NoGradGuard noGrad;
    for (const auto& e : moduleState(m)) st->ema.emplace_back(e.first, e.second.detach().clone());
  }
  if (target == TrainTarget::Diffusion) {
    Schedule sched;
    std::vector<double> ab(static_cast<size_t>(sched.T()));
    for (int64_t t = 0; t < sched.T(); t++) ab[static_cast<size_t>(t)] = sched.alphaBar(t);
    st->alphaBar = at::tensor(ab, at::TensorOptions().dtype(at::kDouble)).to(o.device);
  }
  synchronize(o.device);
  return st;
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
  return b;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// JS handle

Napi::Function TrainerHandle::Init(Napi::Env env) {
  return DefineClass(env, "Trainer",
                     {
                         InstanceAccessor<&TrainerHandle::Target>("target"),
                         InstanceAccessor<&TrainerHandle::StepCount>("step"),
                         InstanceAccessor<&TrainerHandle::Info>("info"),
                         InstanceAccessor<&TrainerHandle::Disposed>("disposed"),
                         InstanceMethod<&TrainerHandle::Dispose>("dispose"),
                         InstanceMethod<&TrainerHandle::Step>("trainStep"),
                         InstanceMethod<&TrainerHandle::Evaluate>("evaluate"),
                         InstanceMethod<&TrainerHandle::Save>("save"),
                         InstanceMethod<&TrainerHandle::Load>("load"),
                         InstanceMethod<&TrainerHandle::Model>("model"),
                         InstanceMethod<&TrainerHandle::Snapshot>("snapshot"),
                     });
}

TrainerHandle::TrainerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerHandle>(info) {
  guarded(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal()) invalidArgument("trainers are made by createTrainer()");
    state_ = *info[0].As<Napi::External<std::shared_ptr<TrainerState>>>().Data();
    return 0;
  });
}

Napi::Object TrainerHandle::Wrap(Napi::Env env, std::shared_ptr<TrainerState> state) {
  auto ext = Napi::External<std::shared_ptr<TrainerState>>::New(env, &state);
  return AddonData::get(env).trainerCtor.New({ext});
}

std::shared_ptr<TrainerState> TrainerHandle::state() const {
  if (!state_) throw BiaError(ErrorCode::Disposed, "trainer was used after dispose()");
  return state_;
}

Napi::Value TrainerHandle::Target(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), targetName(state()->target)); });
}

// The optimiser's step count as of the last finished job (steps run on the compute thread).
Napi::Value TrainerHandle::StepCount(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(state()->optimizer->steps())); });
}

Napi::Value TrainerHandle::Info(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    Json j{{"target", targetName(st->target)}, {"model", Json::parse(st->modelJson())}, {"options", Json::parse(st->optionsJson())}};
    int64_t n = 0, h = 0;
    for (const auto& p : st->module().parameters(true)) n += p.numel();
    if (st->head) for (const auto& p : st->head->parameters(true)) h += p.numel();
    j["parameterCount"] = n;
    j["headParameterCount"] = h;
    j["device"] = deviceName(st->options.device);
    return Napi::String::New(info.Env(), j.dump());
  });
}

Napi::Value TrainerHandle::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }
Napi::Value TrainerHandle::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

Napi::Value TrainerHandle::Step(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    TrainBatch b = batchFromJs(info[0]);
    st->checkBatch(b);
    Napi::Object o = optObject(info[1], "step options");
    const double lr = optNumber(o, "lr", st->options.adam.lr);
    if (!(lr >= 0 && lr < 10)) invalidArgument("lr must be in [0, 10)");
    const double margin = optNumber(o, "margin", 0.0);
    if (!(margin >= 0 && margin < 1.5)) invalidArgument("margin must be in [0, 1.5) radians");
    return startJob(info.Env(), info[2], "bia.train.step", [st, b, lr, margin](JobContext& ctx) -> Finisher {
      ctx.checkAbort();
      StepResult r = st->trainStep(b, lr, margin);
      return [r](Napi::Env env) -> Napi::Value { return resultToJs(env, r); };
    });
  });
}

Napi::Value TrainerHandle::Evaluate(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    TrainBatch b = batchFromJs(info[0]);
    st->checkBatch(b);
    Napi::Object o = optObject(info[1], "evaluate options");
    const double margin = optNumber(o, "margin", 0.0);
    if (!(margin >= 0 && margin < 1.5)) invalidArgument("margin must be in [0, 1.5) radians");
    const uint64_t seed = static_cast<uint64_t>(optInt(o, "seed", 0, 0, int64_t{1} << 52));
    return startJob(info.Env(), info[2], "bia.train.evaluate", [st, b, margin, seed](JobContext& ctx) -> Finisher {
      ctx.checkAbort();
      StepResult r = st->evaluate(b, margin, seed);
      return [r](Napi::Env env) -> Napi::Value { return resultToJs(env, r); };
    });
  });
}

Napi::Value TrainerHandle::Save(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    const std::string path = pathFromJs(info[0]);
    std::map<std::string, std::string> user = metadataFromJs(info[1]);
    return startJob(info.Env(), info[2], "bia.train.save", [st, path, user](JobContext& ctx) -> Finisher {
      // Jobs run one at a time, so what is written is one step's state; the file appears
      // atomically (temporary file + rename).
      StateDict tensors = st->checkpointState();
      writeSafetensors(path, tensors, st->checkpointMetadata(user), jobProgress(ctx, "write"));
      const int64_t step = st->optimizer->steps();
      return [step](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(step)); };
    });
  });
}

Napi::Value TrainerHandle::Load(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
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
  });
}

Napi::Value TrainerHandle::Model(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    Napi::Object o = optObject(info[0], "model options");
    const bool useEma = optBool(o, "ema", true);
    return startJob(info.Env(), info[1], "bia.train.model", [st, useEma](JobContext&) -> Finisher {
      StateDict w = st->weightsForModel(useEma);
      const c10::Device device = st->options.device;
      switch (st->target) {
        case TrainTarget::Diffusion: {
          auto ds = std::make_shared<DiffusionState>();
          ds->unet = UNet(st->unet->config());
          loadStateDictInto(*ds->unet, w, true);
          ds->unet->eval();
          ds->unet->to(device);
          if (st->options.channelsLast) toChannelsLast(*ds->unet);
          ds->device = device;
          ds->channelsLast = st->options.channelsLast;
          synchronize(device);
          return [ds](Napi::Env env) -> Napi::Value { return DiffusionHandle::Wrap(env, ds); };
        }
        case TrainTarget::Encoder: {
          auto es = std::make_shared<EncoderState>();
          es->net = makeIdentityNet(st->arch, st->width, st->encoder->embeddingSize());
          loadStateDictInto(es->net->module(), w, true);
          es->net->module().eval();
          es->net->module().to(device);
          es->arch = st->arch;
          es->width = st->width;
          es->device = device;
          synchronize(device);
          return [es](Napi::Env env) -> Napi::Value { return EncoderHandle::Wrap(env, es); };
        }
        case TrainTarget::Attributes: {
          auto as = makeAttributeState(st->attributes->config(), &w, device, at::kFloat);
          return [as](Napi::Env env) -> Napi::Value { return AttributeHandle::Wrap(env, as); };
        }
      }
      throw BiaError(ErrorCode::Other, "unknown training target");
    });
  });
}

Napi::Value TrainerHandle::Snapshot(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    auto st = state();
    return startJob(info.Env(), info[0], "bia.train.snapshot", [st](JobContext&) -> Finisher {
      StateDict s = st->checkpointState();
      for (auto& e : s) e.second = e.second.clone();  // never aliases the live tensors
      return [s](Napi::Env env) -> Napi::Value { return stateToJs(env, s); };
    });
  });
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

}  // namespace bia
