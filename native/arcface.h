// The ArcFace-family ResNets: TreB1eN's IR-SE50 (`Backbone(112, 50, 'ir_se')`, the network of
// BIA's and DiffusionCLIP's identity loss) and insightface's arcface_torch iresnet r18/r34/r50/r100.
// Parameter and buffer names equal the official state_dict keys; `width` scales every channel
// count (1.0 = official) so that tests can use tiny versions of the same code.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "identity_net.h"

namespace bia {

// Squeeze-and-excitation as in TreB1eN (fc1/fc2 are bias-free 1×1 convolutions).
class SEModuleImpl : public torch::nn::Module {
 public:
  SEModuleImpl(int64_t channels, int64_t reduction);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Conv2d fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SEModule);

// bottleneck_IR_SE: res = BN → conv3×3 → PReLU → conv3×3(stride) → BN → SE; shortcut = MaxPool(1,
// stride) when the depth is unchanged, else conv1×1(stride) → BN.
class BottleneckIRSEImpl : public torch::nn::Module {
 public:
  BottleneckIRSEImpl(int64_t in, int64_t depth, int64_t stride);
  at::Tensor forward(const at::Tensor& x);

 private:
  int64_t stride_;
  torch::nn::BatchNorm2d bnIn{nullptr}, bnOut{nullptr}, shortcutBn{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, shortcutConv{nullptr};
  torch::nn::PReLU prelu{nullptr};
  SEModule se{nullptr};
};
TORCH_MODULE(BottleneckIRSE);

// What both networks share: each is its own module.
class IdentityModule : public IdentityNet, public torch::nn::Module {
 public:
  explicit IdentityModule(int64_t embeddingSize) : embeddingSize_(embeddingSize) {}
  torch::nn::Module& module() override { return *this; }
  int64_t embeddingSize() const override { return embeddingSize_; }

 private:
  int64_t embeddingSize_;
};

class IRSE50 : public IdentityModule {
 public:
  IRSE50(double width, int64_t embeddingSize);
  at::Tensor forward(const at::Tensor& x) override;
  std::string arch() const override { return "ir_se50"; }

 private:
  torch::nn::Conv2d inConv{nullptr};
  torch::nn::BatchNorm2d inBn{nullptr}, outBn2d{nullptr};
  torch::nn::PReLU inPrelu{nullptr};
  std::vector<BottleneckIRSE> units_;
  torch::nn::Linear outLinear{nullptr};
  torch::nn::BatchNorm1d outBn1d{nullptr};
};

// IBasicBlock: BN → conv3×3 → BN → PReLU → conv3×3(stride) → BN, + downsample(x) or x.
class IBasicBlockImpl : public torch::nn::Module {
 public:
  IBasicBlockImpl(int64_t in, int64_t planes, int64_t stride, bool downsample);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr}, dsBn{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, dsConv{nullptr};
  torch::nn::PReLU prelu{nullptr};
};
TORCH_MODULE(IBasicBlock);

class IResNet : public IdentityModule {
 public:
  IResNet(int depth, double width, int64_t embeddingSize);
  at::Tensor forward(const at::Tensor& x) override;
  std::string arch() const override { return "iresnet" + std::to_string(depth_); }

 private:
  int depth_;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::PReLU prelu{nullptr};
  std::vector<IBasicBlock> blocks_;
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d features{nullptr};
};

// Channels of a `width`-scaled network: round(c·width), at least 1.
int64_t scaledChannels(int64_t c, double width);

}  // namespace bia
