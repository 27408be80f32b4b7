// The attribute estimator (see train.h): network, creation and loading. Its JS handle is in
// train_attributes_js.cc.
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <numeric>

#include "device.h"
#include "errors.h"
#include "module_io.h"
#include "train.h"

namespace bia {

namespace {

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

namespace {

// A built (and possibly loaded) estimator in eval mode on its device and dtype.
std::shared_ptr<AttributeState> placed(AttributeNet net, c10::Device device, c10::ScalarType dtype) {
  auto st = std::make_shared<AttributeState>();
  st->net = std::move(net);
  st->net->eval();
  st->net->to(device, dtype);
  st->device = device;
  st->dtype = dtype;
  synchronize(device);
  return st;
}

}  // namespace

std::shared_ptr<AttributeState> makeAttributeState(const AttributeConfig& config, const StateDict* weights, c10::Device device,
                                                   c10::ScalarType dtype) {
  AttributeNet net(config);
  if (weights) loadStateDictInto(*net, *weights, true);
  return placed(std::move(net), device, dtype);
}

std::shared_ptr<AttributeState> createAttributeState(const AttributeConfig& config, uint64_t seed, c10::Device device, c10::ScalarType dtype) {
  torch::manual_seed(seed);
  return makeAttributeState(config, nullptr, device, dtype);
}

std::shared_ptr<AttributeState> loadAttributeState(const std::string& path, c10::Device device, c10::ScalarType dtype, bool strict,
                                                   JobContext& ctx) {
  Checkpoint ck = readForLoading(path, ctx);
  auto it = ck.metadata.find(kAttributeConfigKey);
  if (it == ck.metadata.end()) {
    throw BiaError(ErrorCode::CheckpointMismatch, path + " has no " + kAttributeConfigKey + " metadata: not an attribute estimator saved by this library");
  }
  AttributeNet net(AttributeConfig::fromJson(it->second));
  try {
    loadStateDictInto(*net, ck.tensors, strict);
  } catch (const BiaError& e) {
    if (e.code() != ErrorCode::CheckpointMismatch) throw;
    throw BiaError(ErrorCode::CheckpointMismatch, path + ": " + e.what());
  }
  releaseCheckpoint(ck);
  return placed(std::move(net), device, dtype);
}

void checkAttributeImages(const at::Tensor& x, const AttributeConfig& c) {
  if (x.dim() != 4 || x.size(0) < 1 || x.size(1) != c.inChannels) {
    invalidArgument("images must be [B, " + std::to_string(c.inChannels) + ", H, W], got " + c10::str(x.sizes()));
  }
  const int64_t minSide = int64_t{1} << c.stages;
  if (x.size(2) < minSide || x.size(3) < minSide) invalidArgument("images must be at least " + std::to_string(minSide) + " pixels on each side");
  if (!x.is_floating_point()) invalidArgument("images must be a floating-point tensor in [-1, 1]");
}

at::Tensor attributePredict(const AttributeState& st, const at::Tensor& x, bool features) {
  c10::InferenceMode guard;
  if (!at::isfinite(x).all().item<bool>()) invalidArgument("images contain NaN or Inf");
  const at::Tensor xin = x.to(st.device, st.dtype);
  AttributeNet net = st.net;
  at::Tensor y = (features ? net->features(xin) : net->forward(xin)).to(at::kFloat).contiguous();
  synchronize(st.device);
  return y;
}

}  // namespace bia
