// MobileFaceNet as in TreB1eN's InsightFace_Pytorch (`MobileFaceNet(embedding_size)`), with
// parameter and buffer names equal to that repository's state_dict keys, e.g.
// `conv1.conv.weight`, `conv1.bn.running_mean`, `conv1.prelu.weight`,
// `conv_23.conv_dw.conv.weight`, `conv_3.model.0.project.bn.weight`, `linear.weight`, `bn.bias`.
//
// Layout (C = channels at width 1; every conv has no bias and is followed by a BatchNorm, eps 1e-5):
//   conv1        Conv_block   3→64, 3×3, stride 2, pad 1, + PReLU               112 → 56
//   conv2_dw     Conv_block   64→64, 3×3 depthwise, stride 1, pad 1, + PReLU
//   conv_23      Depth_Wise   64→64 via 128, stride 2                          56 → 28
//   conv_3       Residual     4 × Depth_Wise 64→64 via 128, + shortcut
//   conv_34      Depth_Wise   64→128 via 256, stride 2                         28 → 14
//   conv_4       Residual     6 × Depth_Wise 128→128 via 256, + shortcut
//   conv_45      Depth_Wise   128→128 via 512, stride 2                        14 → 7
//   conv_5       Residual     2 × Depth_Wise 128→128 via 256, + shortcut
//   conv_6_sep   Conv_block   128→512, 1×1, + PReLU
//   conv_6_dw    Linear_block 512→512, 7×7 depthwise, pad 0 (the GDC head)      7 → 1
//   flatten → linear (512→E, no bias) → bn (BatchNorm1d E)
// A Depth_Wise(in→out via g) is `conv` (1×1 in→g, BN, PReLU), `conv_dw` (3×3 depthwise g, BN,
// PReLU) and `project` (1×1 g→out, BN, no activation).
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "identity_net.h"

namespace bia {

// Conv_block (with PReLU) and Linear_block (without): conv (no bias) → bn [→ prelu].
class MfnConvBlockImpl : public torch::nn::Module {
 public:
  MfnConvBlockImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t groups, bool prelu);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::PReLU prelu{nullptr};
};
TORCH_MODULE(MfnConvBlock);

// Depth_Wise: 1×1 expand → 3×3 depthwise → 1×1 project, with the input added when `residual`.
class MfnDepthWiseImpl : public torch::nn::Module {
 public:
  MfnDepthWiseImpl(int64_t in, int64_t out, int64_t expanded, int64_t stride, bool residual);
  at::Tensor forward(const at::Tensor& x);

 private:
  MfnConvBlock conv{nullptr}, convDw{nullptr}, project{nullptr};
  bool residual_;
};
TORCH_MODULE(MfnDepthWise);

class MobileFaceNetImpl : public torch::nn::Module {
 public:
  // width scales every channel count (rounded, at least 1); 1.0 is the official network.
  MobileFaceNetImpl(double width, int64_t embeddingSize);
  // x: [B, 3, 112, 112] → the raw embedding [B, E] (not L2-normalised).
  at::Tensor forward(const at::Tensor& x);
  int64_t embeddingSize() const { return embeddingSize_; }

 private:
  int64_t embeddingSize_;
  MfnConvBlock conv1{nullptr}, conv2Dw{nullptr}, conv6Sep{nullptr}, conv6Dw{nullptr};
  MfnDepthWise conv23{nullptr}, conv34{nullptr}, conv45{nullptr};
  std::vector<MfnDepthWise> conv3, conv4, conv5;
  torch::nn::Linear linear{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};
TORCH_MODULE(MobileFaceNet);

}  // namespace bia
