// The learned perceptual distance L_perc of the absorption step (docs/method.md step 8): VGG16
// features at relu1_2, relu2_2 and relu3_3 with ImageNet normalisation, as the released BIA code's
// VGGPerceptual computes it.
//
// Network: torchvision's vgg16 `features` up to relu3_3 (features.0 … features.15):
//   conv 3→64 (0), ReLU, conv 64→64 (2), ReLU → relu1_2; maxpool 2×2 (4);
//   conv 64→128 (5), ReLU, conv 128→128 (7), ReLU → relu2_2; maxpool 2×2 (9);
//   conv 128→256 (10), ReLU, conv 256→256 (12), ReLU, conv 256→256 (14), ReLU → relu3_3.
// All convolutions 3×3, padding 1, with bias. Parameter names are torchvision's state-dict keys
// (features.{0,2,5,7,10,12,14}.{weight,bias}). Weights are frozen (requires_grad false).
//
// Input: images in [-1, 1], [B, 3, H, W] with H, W ≥ 4; x → (x + 1)/2 → (· − mean)/std with ImageNet's
// mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). No clamping (the released code clamps to
// [-1, 1] first; the two agree for images inside the range, and here out-of-range pixels keep their
// gradient).
//
// Reduction, exactly: distance(a, b)_i = Σ_{l ∈ relu1_2, relu2_2, relu3_3} mean_{c,y,x} |φ_l(a_i) − φ_l(b_i)|,
// i.e. per image the mean absolute feature difference of each layer, summed over the three layers.
// Its batch mean equals the released code's Σ_l F.l1_loss(φ_l(a), φ_l(b)) (LPIPS-free, no channel
// weights, no unit-normalisation of features).
// Differentiable in a and b (plain ATen ops, nothing in place), on any device; the features are
// computed in the net's dtype, the distance is reduced in float32 (float64 for a float64 net) and
// returned on a's device.
//
// Weights: the released code loads torchvision's IMAGENET1K_FEATURES (vgg16_features-amdegroot-88682ab5.pth,
// trained on 0–255 inputs minus the mean, its classifier NaN) yet normalises with ImageNet's mean/std
// as here. That file has the same keys and loads too (the classifier is ignored); vgg16-397923af.pth
// is the one whose training matches this normalisation.
//
// Checkpoints (loadVgg16Weights): torchvision's `vgg16-397923af.pth` (a bare state dict: features.*,
// classifier.*), the same keys in safetensors (what save() writes), or a features-only state dict
// (`vgg16().features.state_dict()`: keys "0.weight", …). Only features.0–14 are used; the later
// features.* convolutions and classifier.* are accepted and ignored. A missing or mis-shaped needed
// tensor fails with BIA_CHECKPOINT_MISMATCH naming it; so do vgg16_bn files (BatchNorm layers shift the
// indices) and other VGG layouts (a weight at an index where vgg16 has no convolution).
//
// Its JS face, the PerceptualModel handle, is vgg_js.h: for other native code (the absorption),
// PerceptualHandle::From(value, what) gives the net of a JS PerceptualModel handle.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "job_context.h"
#include "losses.h"

namespace bia {

// BIA_INVALID_ARGUMENT unless a and b are [B, 3, H, W] with the same H, W ≥ 4 and equal batches (or
// one of them 1, broadcast).
void checkPerceptualInputs(at::IntArrayRef a, at::IntArrayRef b);
// The same for two image tensors, which must also be floating point.
void checkPerceptualImages(const at::Tensor& a, const at::Tensor& b);

class Vgg16Perceptual : public PerceptualNet {
 public:
  // torchvision's initialisation of an untrained vgg16 (Kaiming normal, fan_out, ReLU gain; bias 0),
  // from LibTorch's current default generator; float32 on the CPU.
  Vgg16Perceptual();

  // [relu1_2, relu2_2, relu3_3] of images in [-1, 1] (any device/dtype; moved to the net's).
  std::vector<at::Tensor> features(const at::Tensor& x);
  // Per image [B] (see the reduction above).
  at::Tensor distance(const at::Tensor& a, const at::Tensor& b) override;
  std::string name() const override;  // "vgg16 relu1_2/relu2_2/relu3_3 mean L1"

  torch::nn::Module& module() { return *root_; }
  // Move and cast the weights (floating-point dtypes only); not while another thread uses the net.
  void to(c10::Device device, c10::ScalarType dtype);
  c10::Device device() const { return device_; }
  c10::ScalarType dtype() const { return dtype_; }

 private:
  std::shared_ptr<torch::nn::Module> root_;
  std::vector<torch::nn::Conv2d> convs_;  // features.0, 2, 5, 7, 10, 12, 14
  at::Tensor scale_, shift_;              // [1, 3, 1, 1]: x·scale + shift = ((x + 1)/2 − mean)/std
  c10::Device device_{c10::kCPU};
  c10::ScalarType dtype_ = at::kFloat;
};

// The tensors of a checkpoint that the net needs, under the net's names (features.0–14), after the
// layout checks described above (BIA_CHECKPOINT_MISMATCH). `source` names the file in messages.
StateDict selectVgg16Weights(const StateDict& entries, const std::string& source);
// selectVgg16Weights + the strict (or, with strict false, missing-tolerant) loader of module_io.h.
void loadVgg16Weights(Vgg16Perceptual& net, const StateDict& entries, bool strict, const std::string& source);

// A new net (torchvision's initialisation, seeded) on device/dtype.
std::shared_ptr<Vgg16Perceptual> createVgg16(uint64_t seed, c10::Device device, c10::ScalarType dtype);
// A net with a checkpoint's weights (strict, `path` named in messages) on device/dtype.
std::shared_ptr<Vgg16Perceptual> loadVgg16(const std::string& path, c10::Device device, c10::ScalarType dtype, JobContext& ctx);

// The distance per image [B] (float64, CPU) and its gradient in a (a's shape, device and dtype).
struct PerceptualGradient {
  at::Tensor distance, gradient;
};
PerceptualGradient perceptualGradient(Vgg16Perceptual& net, const at::Tensor& a, const at::Tensor& b);
// A distance ready to be read: float64 on the CPU, contiguous.
at::Tensor readyDistance(const at::Tensor& d);

}  // namespace bia
