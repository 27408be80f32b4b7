#include "arcface.h"

#include <cmath>

#include "errors.h"
#include "module_io.h"

namespace bia {

namespace {

torch::nn::Conv2d convNoBias(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

torch::nn::BatchNorm2d bn2d(int64_t c) { return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c).eps(1e-5)); }

torch::nn::PReLU prelu(int64_t c) { return torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(c)); }


}  // namespace

int64_t scaledChannels(int64_t c, double width) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(static_cast<double>(c) * width)));
}

SEModuleImpl::SEModuleImpl(int64_t channels, int64_t reduction) {
  const int64_t mid = std::max<int64_t>(1, channels / reduction);
  fc1 = register_module("fc1", convNoBias(channels, mid, 1, 1, 0));
  fc2 = register_module("fc2", convNoBias(mid, channels, 1, 1, 0));
}

at::Tensor SEModuleImpl::forward(const at::Tensor& x) {
  at::Tensor s = at::adaptive_avg_pool2d(x, {1, 1});
  s = at::sigmoid(fc2->forward(at::relu(fc1->forward(s))));
  return x * s;
}

BottleneckIRSEImpl::BottleneckIRSEImpl(int64_t in, int64_t depth, int64_t stride) : stride_(stride) {
  if (in != depth) {
    auto sc = container(*this, "shortcut_layer");
    shortcutConv = sc->register_module("0", convNoBias(in, depth, 1, stride, 0));
    shortcutBn = sc->register_module("1", bn2d(depth));
  }
  auto res = container(*this, "res_layer");
  bnIn = res->register_module("0", bn2d(in));
  conv1 = res->register_module("1", convNoBias(in, depth, 3, 1, 1));
  prelu = res->register_module("2", bia::prelu(depth));
  conv2 = res->register_module("3", convNoBias(depth, depth, 3, stride, 1));
  bnOut = res->register_module("4", bn2d(depth));
  se = res->register_module("5", SEModule(depth, 16));
}

at::Tensor BottleneckIRSEImpl::forward(const at::Tensor& x) {
  at::Tensor shortcut = shortcutConv ? shortcutBn->forward(shortcutConv->forward(x))
                                     : (stride_ == 1 ? x : at::max_pool2d(x, {1, 1}, {stride_, stride_}));
  at::Tensor r = bnIn->forward(x);
  r = prelu->forward(conv1->forward(r));
  r = bnOut->forward(conv2->forward(r));
  r = se->forward(r);
  return r + shortcut;
}

IRSE50::IRSE50(double width, int64_t embeddingSize) : IdentityModule(embeddingSize) {
  if (!(width > 0 && width <= 4)) invalidArgument("width must be in (0, 4]");
  if (embeddingSize < 1) invalidArgument("embeddingSize must be positive");
  const int64_t c64 = scaledChannels(64, width);
  auto in = container(*this, "input_layer");
  inConv = in->register_module("0", convNoBias(3, c64, 3, 1, 1));
  inBn = in->register_module("1", bn2d(c64));
  inPrelu = in->register_module("2", bia::prelu(c64));
  // get_blocks(50): (64→64, 3 units), (64→128, 4), (128→256, 14), (256→512, 3); the first unit of
  // each stage has stride 2.
  const int64_t stages[4][3] = {{64, 64, 3}, {64, 128, 4}, {128, 256, 14}, {256, 512, 3}};
  auto body = container(*this, "body");
  int64_t index = 0;
  for (const auto& s : stages) {
    const int64_t inC = scaledChannels(s[0], width), depth = scaledChannels(s[1], width);
    for (int64_t u = 0; u < s[2]; u++) {
      units_.push_back(body->register_module(std::to_string(index++), BottleneckIRSE(u == 0 ? inC : depth, depth, u == 0 ? 2 : 1)));
    }
  }
  const int64_t c512 = scaledChannels(512, width);
  auto out = container(*this, "output_layer");
  outBn2d = out->register_module("0", bn2d(c512));
  outLinear = out->register_module("3", torch::nn::Linear(c512 * 7 * 7, embeddingSize));
  outBn1d = out->register_module("4", torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(embeddingSize).eps(1e-5)));
}

at::Tensor IRSE50::forward(const at::Tensor& x) {
  at::Tensor h = inPrelu->forward(inBn->forward(inConv->forward(x)));
  for (auto& u : units_) h = u->forward(h);
  h = outBn2d->forward(h);
  h = h.flatten(1);  // (dropout is the identity in eval mode)
  return outBn1d->forward(outLinear->forward(h));
}

IBasicBlockImpl::IBasicBlockImpl(int64_t in, int64_t planes, int64_t stride, bool downsample) {
  bn1 = register_module("bn1", bn2d(in));
  conv1 = register_module("conv1", convNoBias(in, planes, 3, 1, 1));
  bn2 = register_module("bn2", bn2d(planes));
  prelu = register_module("prelu", bia::prelu(planes));
  conv2 = register_module("conv2", convNoBias(planes, planes, 3, stride, 1));
  bn3 = register_module("bn3", bn2d(planes));
  if (downsample) {
    auto ds = container(*this, "downsample");
    dsConv = ds->register_module("0", convNoBias(in, planes, 1, stride, 0));
    dsBn = ds->register_module("1", bn2d(planes));
  }
}

at::Tensor IBasicBlockImpl::forward(const at::Tensor& x) {
  at::Tensor out = bn1->forward(x);
  out = conv1->forward(out);
  out = prelu->forward(bn2->forward(out));
  out = bn3->forward(conv2->forward(out));
  return out + (dsConv ? dsBn->forward(dsConv->forward(x)) : x);
}

IResNet::IResNet(int depth, double width, int64_t embeddingSize) : IdentityModule(embeddingSize), depth_(depth) {
  std::vector<int64_t> layers;
  switch (depth) {
    case 18: layers = {2, 2, 2, 2}; break;
    case 34: layers = {3, 4, 6, 3}; break;
    case 50: layers = {3, 4, 14, 3}; break;
    case 100: layers = {3, 13, 30, 3}; break;
    default: invalidArgument("iresnet depth must be 18, 34, 50 or 100, got " + std::to_string(depth));
  }
  if (!(width > 0 && width <= 4)) invalidArgument("width must be in (0, 4]");
  if (embeddingSize < 1) invalidArgument("embeddingSize must be positive");
  int64_t inplanes = scaledChannels(64, width);
  conv1 = register_module("conv1", convNoBias(3, inplanes, 3, 1, 1));
  bn1 = register_module("bn1", bn2d(inplanes));
  prelu = register_module("prelu", bia::prelu(inplanes));
  const int64_t planes[4] = {64, 128, 256, 512};
  for (int L = 0; L < 4; L++) {
    auto layer = container(*this, "layer" + std::to_string(L + 1));
    const int64_t p = scaledChannels(planes[L], width);
    for (int64_t b = 0; b < layers[L]; b++) {
      // Every layer starts with stride 2, which always needs a downsample on its first block.
      blocks_.push_back(layer->register_module(std::to_string(b), IBasicBlock(b == 0 ? inplanes : p, p, b == 0 ? 2 : 1, b == 0)));
    }
    inplanes = p;
  }
  bn2 = register_module("bn2", bn2d(inplanes));
  fc = register_module("fc", torch::nn::Linear(inplanes * 7 * 7, embeddingSize));
  features = register_module("features", torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(embeddingSize).eps(1e-5)));
}

at::Tensor IResNet::forward(const at::Tensor& x) {
  at::Tensor h = prelu->forward(bn1->forward(conv1->forward(x)));
  for (auto& b : blocks_) h = b->forward(h);
  h = bn2->forward(h).flatten(1);  // (dropout is the identity in eval mode)
  return features->forward(fc->forward(h));
}

}  // namespace bia
