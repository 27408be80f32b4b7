#include "vgg.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <set>

#include "device.h"
#include "errors.h"
#include "job_context.h"
#include "module_io.h"

namespace bia {

namespace {

// torchvision's vgg16 `features` indices of the 13 convolutions, and the 7 up to relu3_3.
const std::set<int64_t> kVgg16Convs{0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28};
constexpr std::array<int64_t, 7> kUsed{0, 2, 5, 7, 10, 12, 14};
constexpr std::array<int64_t, 8> kChannels{3, 64, 64, 128, 128, 256, 256, 256};  // in of conv k = [k], out = [k + 1]
constexpr int64_t kMaxUsedIndex = 14;

const double kMean[3] = {0.485, 0.456, 0.406};
const double kStd[3] = {0.229, 0.224, 0.225};

std::string firstKeys(const StateDict& entries) {
  std::string s;
  for (size_t i = 0; i < entries.size() && i < 3; i++) s += (i ? ", " : "") + entries[i].first;
  return s.empty() ? "(none)" : s;
}

// "12.weight" → {12, "weight"}; nullopt unless the name starts with digits and a dot.
std::optional<std::pair<int64_t, std::string>> splitIndex(const std::string& name) {
  size_t i = 0;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) i++;
  if (i == 0 || i > 6 || i >= name.size() || name[i] != '.') return std::nullopt;
  return std::make_pair(std::stoll(name.substr(0, i)), name.substr(i + 1));
}

}  // namespace

void checkPerceptualInputs(at::IntArrayRef a, at::IntArrayRef b) {
  if (a.size() != 4 || b.size() != 4 || a[1] != 3 || b[1] != 3) {
    invalidArgument("the VGG16 perceptual distance takes RGB images [B, 3, H, W]; got " + c10::str(a) + " and " + c10::str(b));
  }
  if (a[2] != b[2] || a[3] != b[3]) invalidArgument("the VGG16 perceptual distance needs images of the same size; got " + c10::str(a) + " and " + c10::str(b));
  if (a[2] < 4 || a[3] < 4) invalidArgument("the VGG16 perceptual distance needs images of at least 4x4 (two 2x2 poolings); got " + c10::str(a));
  if (a[0] < 1 || b[0] < 1) invalidArgument("the VGG16 perceptual distance got an empty batch");
  if (a[0] != b[0] && a[0] != 1 && b[0] != 1) {
    invalidArgument("the VGG16 perceptual distance needs equal batches (or one of them 1); got " + std::to_string(a[0]) + " and " + std::to_string(b[0]));
  }
}

void checkPerceptualImages(const at::Tensor& a, const at::Tensor& b) {
  checkPerceptualInputs(a.sizes(), b.sizes());
  if (!a.is_floating_point() || !b.is_floating_point()) invalidArgument("the VGG16 perceptual distance needs floating-point images");
}

Vgg16Perceptual::Vgg16Perceptual() : root_(std::make_shared<torch::nn::Module>("Vgg16Perceptual")) {
  auto features = container(*root_, "features");
  for (size_t k = 0; k < kUsed.size(); k++) {
    auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(kChannels[k], kChannels[k + 1], 3).padding(1).bias(true));
    convs_.push_back(features->register_module(std::to_string(kUsed[k]), conv));
  }
  torch::NoGradGuard noGrad;
  for (auto& c : convs_) {
    torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    torch::nn::init::zeros_(c->bias);
  }
  to(c10::kCPU, at::kFloat);
}

void Vgg16Perceptual::to(c10::Device device, c10::ScalarType dtype) {
  if (!at::isFloatingType(dtype)) invalidArgument("the VGG16 perceptual net needs a floating-point dtype");
  // Never inference tensors: the weights and constants must be usable where autograd records.
  c10::InferenceMode notInference(false);
  torch::NoGradGuard noGrad;
  root_->to(device);
  for (auto& p : root_->parameters(true)) {
    p.set_data(p.to(dtype));
    p.requires_grad_(false);
  }
  std::vector<double> scale, shift;
  for (int c = 0; c < 3; c++) {
    scale.push_back(0.5 / kStd[c]);
    shift.push_back((0.5 - kMean[c]) / kStd[c]);
  }
  scale_ = at::tensor(scale, at::kDouble).view({1, 3, 1, 1}).to(device, dtype);
  shift_ = at::tensor(shift, at::kDouble).view({1, 3, 1, 1}).to(device, dtype);
  device_ = device;
  dtype_ = dtype;
}

std::vector<at::Tensor> Vgg16Perceptual::features(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3) invalidArgument("VGG16 takes RGB images [B, 3, H, W], got " + c10::str(x.sizes()));
  if (x.size(2) < 4 || x.size(3) < 4) invalidArgument("VGG16 features up to relu3_3 need images of at least 4x4, got " + c10::str(x.sizes()));
  at::Tensor h = x.to(device_, dtype_) * scale_ + shift_;
  auto conv = [&](size_t k) { h = at::relu(convs_[k]->forward(h)); };
  auto pool = [&] { h = at::max_pool2d(h, {2, 2}, {2, 2}); };
  std::vector<at::Tensor> out;
  conv(0), conv(1);
  out.push_back(h);  // relu1_2
  pool(), conv(2), conv(3);
  out.push_back(h);  // relu2_2
  pool(), conv(4), conv(5), conv(6);
  out.push_back(h);  // relu3_3
  return out;
}

at::Tensor Vgg16Perceptual::distance(const at::Tensor& a, const at::Tensor& b) {
  checkPerceptualImages(a, b);
  const int64_t na = a.size(0);
  std::vector<at::Tensor> fa, fb;
  if (a.size(0) == b.size(0)) {
    // One pass over both batches.
    std::vector<at::Tensor> both = features(at::cat({a.to(device_, dtype_), b.to(device_, dtype_)}, 0));
    for (auto& f : both) {
      fa.push_back(f.narrow(0, 0, na));
      fb.push_back(f.narrow(0, na, na));
    }
  } else {
    fa = features(a);
    fb = features(b);
  }
  const at::ScalarType acc = dtype_ == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor d;
  for (size_t l = 0; l < fa.size(); l++) {
    at::Tensor m = (fa[l] - fb[l]).abs().flatten(1).mean({1}, false, acc);
    d = d.defined() ? d + m : m;
  }
  return d.to(a.device());
}

std::string Vgg16Perceptual::name() const { return "vgg16 relu1_2/relu2_2/relu3_3 mean L1"; }

StateDict selectVgg16Weights(const StateDict& entries, const std::string& source) {
  bool hasFeatures = false;
  for (const auto& e : entries) hasFeatures = hasFeatures || e.first.rfind("features.", 0) == 0;
  // Under "features." (torchvision's whole-model dict), or bare indices (a features-only dict).
  const std::string prefix = hasFeatures ? "features." : "";
  struct Item {
    int64_t index;
    std::string suffix;
    const at::Tensor* tensor;
  };
  std::vector<Item> items;
  for (const auto& e : entries) {
    if (e.first.rfind(prefix, 0) != 0) continue;  // classifier.* and anything else: not ours
    auto split = splitIndex(e.first.substr(prefix.size()));
    if (split) items.push_back({split->first, split->second, &e.second});
  }
  if (items.empty()) {
    throw BiaError(ErrorCode::CheckpointMismatch, source + " is not a VGG16 checkpoint: expected torchvision's keys features.0.weight, … "
                   "(or a features-only state dict: 0.weight, …); its first keys are: " + firstKeys(entries));
  }
  for (const auto& it : items) {
    if (it.suffix == "running_mean" || it.suffix == "running_var" || it.suffix == "num_batches_tracked") {
      throw BiaError(ErrorCode::CheckpointMismatch, source + " holds a VGG with batch normalisation (" + prefix + std::to_string(it.index) + "." + it.suffix +
                     "), e.g. torchvision's vgg16_bn, whose convolutions sit at other indices; the perceptual loss needs plain VGG16 "
                     "weights (torchvision's vgg16-397923af.pth)");
    }
  }
  for (const auto& it : items) {
    if (!kVgg16Convs.count(it.index)) {
      throw BiaError(ErrorCode::CheckpointMismatch, source + " is not torchvision's vgg16 layout: it has " + prefix + std::to_string(it.index) + "." + it.suffix +
                     " where vgg16 has no convolution (vgg11, vgg13 and vgg19 place theirs elsewhere); the perceptual loss needs plain "
                     "VGG16 weights (torchvision's vgg16-397923af.pth)");
    }
  }
  StateDict out;
  for (const auto& it : items) {
    if (it.index <= kMaxUsedIndex) out.emplace_back("features." + std::to_string(it.index) + "." + it.suffix, *it.tensor);
  }
  return out;
}

void loadVgg16Weights(Vgg16Perceptual& net, const StateDict& entries, bool strict, const std::string& source) {
  StateDict selected = selectVgg16Weights(entries, source);
  try {
    loadStateDictInto(net.module(), selected, strict);
  } catch (const BiaError& e) {
    if (e.code() != ErrorCode::CheckpointMismatch) throw;
    throw BiaError(ErrorCode::CheckpointMismatch, source + " (vgg16 features up to relu3_3): " + e.what());
  }
}

at::Tensor readyDistance(const at::Tensor& d) { return d.detach().to(at::kCPU, at::kDouble).contiguous(); }

std::shared_ptr<Vgg16Perceptual> createVgg16(uint64_t seed, c10::Device device, c10::ScalarType dtype) {
  torch::manual_seed(seed);
  auto net = std::make_shared<Vgg16Perceptual>();
  net->to(device, dtype);
  synchronize(device);
  return net;
}

std::shared_ptr<Vgg16Perceptual> loadVgg16(const std::string& path, c10::Device device, c10::ScalarType dtype, JobContext& ctx) {
  Checkpoint ck = readForLoading(path, ctx);
  ctx.checkAbort();
  auto net = std::make_shared<Vgg16Perceptual>();
  loadVgg16Weights(*net, ck.tensors, true, path);
  releaseCheckpoint(ck);
  net->to(device, dtype);
  synchronize(device);
  return net;
}

PerceptualGradient perceptualGradient(Vgg16Perceptual& net, const at::Tensor& a, const at::Tensor& b) {
  torch::AutoGradMode grad(true);
  // Clones outside inference mode: the inputs may be inference tensors from earlier jobs.
  at::Tensor x = a.clone().requires_grad_(true);
  at::Tensor d = net.distance(x, b.clone());
  d.sum().backward();
  at::Tensor g = x.grad().contiguous();
  at::Tensor dd = readyDistance(d);
  synchronize(g.device());
  return {dd, g};
}

}  // namespace bia
