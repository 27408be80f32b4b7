#include "mobilefacenet.h"

#include <cmath>

#include "errors.h"
#include "module_io.h"

namespace bia {

namespace {


bool inPlaceOk(const at::Tensor& t) { return !(at::GradMode::is_enabled() && t.requires_grad()); }

constexpr int64_t kInputSide = 112;

}  // namespace

MfnConvBlockImpl::MfnConvBlockImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t groups, bool withPrelu) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                       .stride(stride).padding(padding).groups(groups).bias(false)));
  bn = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(1e-5)));
  if (withPrelu) prelu = register_module("prelu", torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(out)));
}

at::Tensor MfnConvBlockImpl::forward(const at::Tensor& x) {
  at::Tensor y = bn->forward(conv->forward(x));
  return prelu ? prelu->forward(y) : y;
}

MfnDepthWiseImpl::MfnDepthWiseImpl(int64_t in, int64_t out, int64_t expanded, int64_t stride, bool residual) : residual_(residual) {
  conv = register_module("conv", MfnConvBlock(in, expanded, 1, 1, 0, 1, true));
  convDw = register_module("conv_dw", MfnConvBlock(expanded, expanded, 3, stride, 1, expanded, true));
  project = register_module("project", MfnConvBlock(expanded, out, 1, 1, 0, 1, false));
}

at::Tensor MfnDepthWiseImpl::forward(const at::Tensor& x) {
  at::Tensor y = project->forward(convDw->forward(conv->forward(x)));
  if (!residual_) return y;
  return inPlaceOk(y) && inPlaceOk(x) ? y.add_(x) : y + x;
}

MobileFaceNetImpl::MobileFaceNetImpl(double width, int64_t embeddingSize) : embeddingSize_(embeddingSize) {
  if (!std::isfinite(width) || width <= 0 || width > 16) invalidArgument("MobileFaceNet width must be in (0, 16], got " + std::to_string(width));
  if (embeddingSize < 1 || embeddingSize > 65536) invalidArgument("MobileFaceNet embeddingSize must be in [1, 65536], got " + std::to_string(embeddingSize));
  auto ch = [width](int64_t c) { return std::max<int64_t>(1, std::llround(static_cast<double>(c) * width)); };
  const int64_t c64 = ch(64), c128 = ch(128), c256 = ch(256), c512 = ch(512);

  conv1 = register_module("conv1", MfnConvBlock(3, c64, 3, 2, 1, 1, true));
  conv2Dw = register_module("conv2_dw", MfnConvBlock(c64, c64, 3, 1, 1, c64, true));
  conv23 = register_module("conv_23", MfnDepthWise(c64, c64, c128, 2, false));
  auto residual = [&](const char* name, int64_t c, int64_t expanded, int n, std::vector<MfnDepthWise>& blocks) {
    auto model = container(*container(*this, name), "model");
    for (int i = 0; i < n; i++) blocks.push_back(model->register_module(std::to_string(i), MfnDepthWise(c, c, expanded, 1, true)));
  };
  residual("conv_3", c64, c128, 4, conv3);
  conv34 = register_module("conv_34", MfnDepthWise(c64, c128, c256, 2, false));
  residual("conv_4", c128, c256, 6, conv4);
  conv45 = register_module("conv_45", MfnDepthWise(c128, c128, c512, 2, false));
  residual("conv_5", c128, c256, 2, conv5);
  conv6Sep = register_module("conv_6_sep", MfnConvBlock(c128, c512, 1, 1, 0, 1, true));
  conv6Dw = register_module("conv_6_dw", MfnConvBlock(c512, c512, 7, 1, 0, c512, false));
  linear = register_module("linear", torch::nn::Linear(torch::nn::LinearOptions(c512, embeddingSize).bias(false)));
  bn = register_module("bn", torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(embeddingSize).eps(1e-5)));
}

at::Tensor MobileFaceNetImpl::forward(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3 || x.size(2) != kInputSide || x.size(3) != kInputSide) {
    invalidArgument("MobileFaceNet takes [B, 3, 112, 112] images, got " + c10::str(x.sizes()));
  }
  if (x.size(0) < 1) invalidArgument("MobileFaceNet input has an empty batch");
  at::Tensor h = conv2Dw->forward(conv1->forward(x));
  h = conv23->forward(h);
  for (auto& b : conv3) h = b->forward(h);
  h = conv34->forward(h);
  for (auto& b : conv4) h = b->forward(h);
  h = conv45->forward(h);
  for (auto& b : conv5) h = b->forward(h);
  h = conv6Dw->forward(conv6Sep->forward(h));  // [B, C, 1, 1]
  return bn->forward(linear->forward(h.flatten(1)));
}

namespace {

class MobileFaceNetIdentity : public IdentityNet {
 public:
  MobileFaceNetIdentity(double width, int64_t embeddingSize) : net_(width, embeddingSize) { net_->eval(); }
  at::Tensor forward(const at::Tensor& x) override { return net_->forward(x); }
  torch::nn::Module& module() override { return *net_; }
  int64_t embeddingSize() const override { return net_->embeddingSize(); }
  std::string arch() const override { return "mobilefacenet"; }

 private:
  MobileFaceNet net_;
};

}  // namespace

std::shared_ptr<IdentityNet> makeMobileFaceNet(double width, int64_t embeddingSize) {
  return std::make_shared<MobileFaceNetIdentity>(width, embeddingSize);
}

}  // namespace bia
