// Low-rank adapters and patch files (see lora.h).
#include "lora.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>

#include "errors.h"
#include "module_io.h"

namespace bia {

using Json = nlohmann::json;

namespace {

constexpr const char* kDown = ".lora_down.weight";
constexpr const char* kUp = ".lora_up.weight";

// The weight member of a Conv2d or Linear (the only layers adapted).
at::Tensor* weightMember(torch::nn::Module& m) {
  if (auto* c = dynamic_cast<torch::nn::Conv2dImpl*>(&m)) return &c->weight;
  if (auto* l = dynamic_cast<torch::nn::LinearImpl*>(&m)) return &l->weight;
  return nullptr;
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

at::Tensor delta(const at::Tensor& up, const at::Tensor& down, const at::Tensor& like, double scale) {
  return (up.matmul(down) * scale).view(like.sizes());
}

}  // namespace

StateDict LoraSet::tensors() const {
  StateDict out;
  for (const auto& a : adapters) {
    out.emplace_back(a.layer + kDown, a.down);
    out.emplace_back(a.layer + kUp, a.up);
  }
  return out;
}

void LoraSet::apply() const {
  for (const auto& a : adapters) *weightMember(*a.module) = a.base + delta(a.up, a.down, a.base, scale());
}

void LoraSet::restore() const {
  for (const auto& a : adapters) *weightMember(*a.module) = a.base;
}

StateDict LoraSet::merged(const StateDict& weights) const {
  torch::NoGradGuard noGrad;
  std::map<std::string, const LoraAdapter*> byWeight;
  for (const auto& a : adapters) byWeight[a.layer + ".weight"] = &a;
  StateDict out;
  for (const auto& e : weights) {
    auto it = byWeight.find(e.first);
    if (it == byWeight.end()) {
      out.emplace_back(e.first, e.second);
      continue;
    }
    const LoraAdapter& a = *it->second;
    out.emplace_back(e.first, (e.second + delta(a.up, a.down, e.second, scale()).to(e.second.device(), e.second.scalar_type())).contiguous());
  }
  return out;
}

LoraSet makeLora(torch::nn::Module& m, const std::vector<std::string>& prefixes, int64_t rank, double alpha) {
  if (rank < 1 || rank > 1024) invalidArgument("adapterRank must be in [1, 1024], got " + std::to_string(rank));
  if (!(alpha > 0 && alpha <= 1e4)) invalidArgument("adapterAlpha must be in (0, 10000]");
  auto selected = [&](const std::string& name) {
    if (prefixes.empty()) return true;
    for (const auto& p : prefixes) if (name.compare(0, p.size(), p) == 0) return true;
    return false;
  };
  LoraSet set;
  set.rank = rank;
  set.alpha = alpha;
  torch::NoGradGuard noGrad;
  for (const auto& item : m.named_modules("", false)) {
    at::Tensor* w = weightMember(*item.value());
    if (!w || !w->defined()) continue;
    const std::string layer = item.key();
    if (!selected(layer + ".weight")) continue;
    const int64_t out = w->size(0), fanIn = w->numel() / w->size(0);
    LoraAdapter a;
    a.layer = layer;
    a.module = item.value();
    a.base = *w;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fanIn));
    a.down = (at::rand({rank, fanIn}, w->options()) * 2 - 1).mul_(bound).set_requires_grad(true);
    a.up = at::zeros({out, rank}, w->options()).set_requires_grad(true);
    set.adapters.push_back(std::move(a));
  }
  if (set.adapters.empty()) invalidArgument("no convolution or linear weight matches the trainable prefixes: no adapter to train");
  return set;
}

void writeLoraPatch(const std::string& path, const LoraSet& lora, std::map<std::string, std::string> metadata, JobContext& ctx) {
  metadata[kLoraKey] = Json{{"rank", lora.rank}, {"alpha", lora.alpha}, {"version", 1}}.dump();
  writeSafetensors(path, forSaving(lora.tensors()), metadata, jobProgress(ctx, "write"));
}

StateDict mergeLoraPatch(const StateDict& weights, const std::string& path, JobContext& ctx) {
  Checkpoint ck = readForLoading(path, ctx);
  auto it = ck.metadata.find(kLoraKey);
  if (it == ck.metadata.end()) throw BiaError(ErrorCode::Checkpoint, path + " is not an adapter patch (no " + kLoraKey + " metadata)");
  double rank = 0, alpha = 0;
  try {
    Json j = Json::parse(it->second);
    rank = j.at("rank").get<double>();
    alpha = j.at("alpha").get<double>();
  } catch (const Json::exception& e) {
    throw BiaError(ErrorCode::Checkpoint, path + ": the " + kLoraKey + " metadata is malformed: " + e.what());
  }
  if (!(rank >= 1 && rank <= 1024 && rank == std::floor(rank)) || !(alpha > 0 && alpha <= 1e4)) {
    throw BiaError(ErrorCode::Checkpoint, path + ": adapter rank " + std::to_string(rank) + " / alpha " + std::to_string(alpha) + " out of range");
  }
  std::map<std::string, at::Tensor> downs, ups;
  for (const auto& e : ck.tensors) {
    if (endsWith(e.first, kDown)) downs[e.first.substr(0, e.first.size() - std::string(kDown).size())] = e.second;
    else if (endsWith(e.first, kUp)) ups[e.first.substr(0, e.first.size() - std::string(kUp).size())] = e.second;
    else throw BiaError(ErrorCode::CheckpointMismatch, path + ": unexpected tensor '" + e.first + "' in an adapter patch");
  }
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < weights.size(); i++) index[weights[i].first] = i;
  StateDict out = weights;
  torch::NoGradGuard noGrad;
  const double scale = alpha / rank;
  for (const auto& d : downs) {
    auto u = ups.find(d.first);
    if (u == ups.end()) throw BiaError(ErrorCode::CheckpointMismatch, path + ": '" + d.first + "' has lora_down but no lora_up");
    auto w = index.find(d.first + ".weight");
    if (w == index.end()) throw BiaError(ErrorCode::CheckpointMismatch, path + ": the model has no weight '" + d.first + ".weight' to adapt");
    const at::Tensor& base = weights[w->second].second;
    const int64_t out0 = base.dim() >= 2 ? base.size(0) : -1, fanIn = base.dim() >= 2 ? base.numel() / base.size(0) : -1;
    const at::Tensor &down = d.second, &up = u->second;
    if (down.dim() != 2 || up.dim() != 2 || down.size(0) != static_cast<int64_t>(rank) || up.size(1) != static_cast<int64_t>(rank) ||
        down.size(1) != fanIn || up.size(0) != out0) {
      throw BiaError(ErrorCode::CheckpointMismatch, path + ": the adapter of '" + d.first + "' (down " + c10::str(down.sizes()) + ", up " +
                                                        c10::str(up.sizes()) + ", rank " + std::to_string(static_cast<int64_t>(rank)) +
                                                        ") does not fit its weight " + c10::str(base.sizes()));
    }
    if (!down.is_floating_point() || !up.is_floating_point()) throw BiaError(ErrorCode::CheckpointMismatch, path + ": the adapter of '" + d.first + "' is not floating point");
    at::Tensor dw = delta(up.to(at::kFloat), down.to(at::kFloat), base, scale);
    if (!dw.isfinite().all().item<bool>()) throw BiaError(ErrorCode::Checkpoint, path + ": the adapter of '" + d.first + "' holds NaN or infinite values");
    out[w->second].second = (base + dw.to(base.device(), base.scalar_type())).contiguous();
    ups.erase(u);
  }
  if (!ups.empty()) throw BiaError(ErrorCode::CheckpointMismatch, path + ": '" + ups.begin()->first + "' has lora_up but no lora_down");
  if (downs.empty()) throw BiaError(ErrorCode::CheckpointMismatch, path + " holds no adapters");
  releaseCheckpoint(ck);
  return out;
}

}  // namespace bia
