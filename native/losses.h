// Image losses of the absorption step (docs/method.md step 8), differentiable (plain ATen ops):
// MSE, SSIM, the image-gradient L1, and the weight-free perceptual substitute used when no VGG16
// weights are given: L_perc = (1 − SSIM(a, b)) + mean |∇a − ∇b|.
// SSIM: 11×11 Gaussian window (σ 1.5), per channel, valid convolution, C1 = (0.01·2)², C2 = (0.03·2)²
// for images in [-1, 1] (dynamic range 2); averaged over channels and positions.
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace bia {

struct ImageLosses {
  at::Tensor mse;         // [B]
  at::Tensor ssim;        // [B]
  at::Tensor gradL1;      // [B]
  at::Tensor perceptual;  // [B] = (1 − ssim) + gradL1
};

// a, b: [B, C, H, W] (H, W ≥ 11), same shape, or b one image [1, C, H, W] compared with each of a;
// results per image of a.
ImageLosses imageLosses(const at::Tensor& a, const at::Tensor& b);

// A learned perceptual distance between image batches in [-1, 1] (VGG16 relu1_2 / relu2_2 /
// relu3_3 mean L1 with ImageNet normalisation, native/vgg.h), differentiable, per image [B].
class PerceptualNet {
 public:
  virtual ~PerceptualNet() = default;
  virtual at::Tensor distance(const at::Tensor& a, const at::Tensor& b) = 0;
  // What reports call it, e.g. "vgg16 relu1_2/relu2_2/relu3_3 mean L1".
  virtual std::string name() const = 0;
};

// L_perc per image [B]: net->distance(a, b) when a net is given, else the weight-free substitute
// (1 − SSIM) + gradient L1. Differentiable either way.
at::Tensor perceptualLoss(const at::Tensor& a, const at::Tensor& b, PerceptualNet* net);
// The name of the L_perc that perceptualLoss(…, net) computes.
std::string perceptualName(const PerceptualNet* net);

}  // namespace bia
