// The Trainer (see train.h): state, AdamW, EMA, checkpoints. The per-target losses and the batch
// augmentation are in train_losses.cc, the JS handle in train_js.cc.
#include "train.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <set>

#include "device.h"
#include "diffusion.h"
#include "errors.h"
#include "identity.h"
#include "module_io.h"
#include "ddim.h"

namespace bia {

using Json = nlohmann::json;

namespace {

const std::pair<TrainTarget, const char*> kTargets[] = {
    {TrainTarget::Diffusion, "diffusion"}, {TrainTarget::Encoder, "encoder"}, {TrainTarget::Attributes, "attributes"}};

}  // namespace

const char* targetName(TrainTarget t) {
  for (const auto& [target, name] : kTargets) if (target == t) return name;
  return "?";
}

std::optional<TrainTarget> parseTrainTarget(const std::string& name) {
  for (const auto& [target, n] : kTargets) if (name == n) return target;
  return std::nullopt;
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
              {"scale", o.scale}, {"flip", o.flip}, {"blur", o.blur}, {"blurProb", o.blurProb}, {"noise", o.noise},
              {"trainable", o.trainable}, {"adapterRank", o.adapterRank}, {"adapterAlpha", o.adapterAlpha}}.dump();
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
  for (const auto& e : lora.tensors()) out.emplace_back("lora." + e.first, e.second);
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
    case TrainTarget::Attributes: user[kAttributeConfigKey] = attributes->config().toJson(); break;
  }
  user["format"] = "pt";
  return user;
}

int64_t TrainerState::save(const std::string& path, const std::map<std::string, std::string>& user, JobContext& ctx) {
  // Jobs run one at a time, so what is written is one step's state; the file appears
  // atomically (temporary file + rename).
  StateDict tensors = checkpointState();
  writeSafetensors(path, tensors, checkpointMetadata(user), jobProgress(ctx, "write"));
  return optimizer->steps();
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

std::string TrainerState::infoJson() {
  Json j{{"target", targetName(target)}, {"model", Json::parse(modelJson())}, {"options", Json::parse(optionsJson())}};
  int64_t n = 0, h = 0;
  for (const auto& p : module().parameters(true)) n += p.numel();
  if (head) for (const auto& p : head->parameters(true)) h += p.numel();
  j["parameterCount"] = n;
  j["headParameterCount"] = h;
  int64_t a = 0;
  for (const auto& e : lora.tensors()) a += e.second.numel();
  j["adapterParameterCount"] = a;
  j["device"] = deviceName(options.device);
  return j.dump();
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
  return lora.empty() ? out : lora.merged(out);
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
  auto selected = [&](const std::string& name) {
    if (o.trainable.empty()) return true;
    for (const auto& prefix : o.trainable) if (name.compare(0, prefix.size(), prefix) == 0) return true;
    return false;
  };
  const bool adapters = o.adapterRank > 0;
  if (adapters && o.emaDecay > 0) invalidArgument("emaDecay is not available with adapters (adapterRank > 0)");
  for (const auto& p : m.named_parameters(true)) p.value().set_requires_grad(!adapters && selected(p.key()));
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
  for (const auto& p : m.named_parameters(true)) if (p.value().requires_grad()) trainable.emplace_back(p.key(), p.value());
  if (adapters) {
    st->lora = makeLora(m, o.trainable, o.adapterRank, o.adapterAlpha > 0 ? o.adapterAlpha : static_cast<double>(o.adapterRank));
    for (const auto& e : st->lora.tensors()) trainable.emplace_back("lora." + e.first, e.second);
  }
  if (trainable.empty()) invalidArgument("trainable selects none of the network's parameters");
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

TrainedModel trainedModel(TrainerState& st, bool useEma) {
  StateDict w = st.weightsForModel(useEma);
  const c10::Device device = st.options.device;
  TrainedModel out;
  switch (st.target) {
    case TrainTarget::Diffusion: {
      auto ds = std::make_shared<DiffusionState>();
      ds->unet = UNet(st.unet->config());
      loadStateDictInto(*ds->unet, w, true);
      ds->unet->eval();
      ds->unet->to(device);
      if (st.options.channelsLast) toChannelsLast(*ds->unet);
      ds->device = device;
      ds->channelsLast = st.options.channelsLast;
      synchronize(device);
      out.diffusion = ds;
      return out;
    }
    case TrainTarget::Encoder: {
      auto es = std::make_shared<EncoderState>();
      es->net = makeIdentityNet(st.arch, st.width, st.encoder->embeddingSize());
      loadStateDictInto(es->net->module(), w, true);
      es->net->module().eval();
      es->net->module().to(device);
      es->arch = st.arch;
      es->width = st.width;
      es->device = device;
      synchronize(device);
      out.encoder = es;
      return out;
    }
    case TrainTarget::Attributes:
      out.attributes = makeAttributeState(st.attributes->config(), &w, device, at::kFloat);
      return out;
  }
  throw BiaError(ErrorCode::Other, "unknown training target");
}

}  // namespace bia
