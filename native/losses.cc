#include "losses.h"

#include <cmath>
#include <vector>

#include "errors.h"

namespace bia {

namespace {

// The normalised 11×11 Gaussian window (σ 1.5) as a depthwise kernel [C, 1, 11, 11].
at::Tensor gaussianWindow(int64_t channels, const at::TensorOptions& opts) {
  at::Tensor x = at::arange(11, opts.dtype(at::kDouble)) - 5.0;
  at::Tensor g = at::exp(-(x * x) / (2 * 1.5 * 1.5));
  g = g / g.sum();
  at::Tensor w = at::outer(g, g).to(opts.dtype());
  return w.expand({channels, 1, 11, 11}).contiguous();
}

at::Tensor perImageMean(const at::Tensor& t) { return t.flatten(1).mean(1); }

}  // namespace

ImageLosses imageLosses(const at::Tensor& a, const at::Tensor& b) {
  const bool sameImage = b.dim() == 4 && b.size(0) == 1 && a.dim() == 4 && a.sizes().slice(1) == b.sizes().slice(1);
  if (a.dim() != 4 || (a.sizes() != b.sizes() && !sameImage)) {
    invalidArgument("image losses need two [B, C, H, W] tensors of the same shape (or b one image), got " + c10::str(a.sizes()) + " and " + c10::str(b.sizes()));
  }
  if (a.size(2) < 11 || a.size(3) < 11) invalidArgument("SSIM needs images of at least 11x11");
  const int64_t c = a.size(1);
  at::Tensor x = a, y = b.to(a.scalar_type()).expand_as(a);
  ImageLosses out;
  out.mse = perImageMean((x - y).pow(2));
  at::Tensor w = gaussianWindow(c, x.options());
  const at::Tensor noBias;
  const std::vector<int64_t> ones{1, 1}, zeros{0, 0};
  auto blur = [&](const at::Tensor& t) {
    return at::conv2d(t, w, noBias, at::IntArrayRef(ones), at::IntArrayRef(zeros), at::IntArrayRef(ones), c);
  };
  const double c1 = std::pow(0.01 * 2.0, 2), c2 = std::pow(0.03 * 2.0, 2);
  const at::Tensor muX = blur(x);
  const at::Tensor muY = blur(y);
  const at::Tensor sxx = blur(x * x) - muX * muX;
  const at::Tensor syy = blur(y * y) - muY * muY;
  const at::Tensor sxy = blur(x * y) - muX * muY;
  at::Tensor map = ((2 * muX * muY + c1) * (2 * sxy + c2)) / ((muX * muX + muY * muY + c1) * (sxx + syy + c2));
  out.ssim = perImageMean(map);
  auto dx = [](const at::Tensor& t) { return t.narrow(3, 1, t.size(3) - 1) - t.narrow(3, 0, t.size(3) - 1); };
  auto dy = [](const at::Tensor& t) { return t.narrow(2, 1, t.size(2) - 1) - t.narrow(2, 0, t.size(2) - 1); };
  out.gradL1 = 0.5 * (perImageMean((dx(x) - dx(y)).abs()) + perImageMean((dy(x) - dy(y)).abs()));
  out.perceptual = (1 - out.ssim) + out.gradL1;
  return out;
}

at::Tensor perceptualLoss(const at::Tensor& a, const at::Tensor& b, PerceptualNet* net) {
  return net ? net->distance(a, b) : imageLosses(a, b).perceptual;
}

std::string perceptualName(const PerceptualNet* net) {
  return net ? net->name() : "(1 - SSIM) + image-gradient L1 (weight-free substitute for VGG16)";
}

}  // namespace bia
