#include "unet.h"

#include <c10/core/InferenceMode.h>

#include <chrono>
#include <mutex>

#include <cmath>
#include <cstdlib>

#include "engine.h"
#include "errors.h"
#include "group_norm.h"
#include "module_io.h"

namespace bia {

namespace {

// GroupNorm(32, C, eps 1e-6, affine) as in the official Normalize().
torch::nn::GroupNorm normalize(int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(32, channels).eps(1e-6).affine(true));
}

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(true));
}


// Out of autograd, element-wise steps run in place: a fresh 32 MiB activation costs more in page
// faults than the arithmetic on it (measured: silu 11.3 ms out of place, ~2 ms in place, at
// 128 x 256 x 256). Under autograd they allocate, as the backward pass needs their inputs.
bool inPlaceOk(const at::Tensor& t) { return !(at::GradMode::is_enabled() && t.requires_grad()); }

at::Tensor swish(at::Tensor x) { return inPlaceOk(x) ? at::silu_(x) : at::silu(x); }

// GroupNorm, then SiLU when `silu`: the fused CPU kernel (group_norm.h) in inference jobs (forward,
// invert, decode run under c10::InferenceMode), LibTorch's ops otherwise — training, and the gradient
// absorption, whose checkpointed backward recomputes steps under autograd and must see the same
// values as its no-grad pass. BIA_FUSED_GROUP_NORM=0 turns the kernel off for float32 (A/B measurements).
bool fusedGroupNormOn() {
  static const bool on = [] {
    const char* v = std::getenv("BIA_FUSED_GROUP_NORM");
    return !(v && std::string(v) == "0");
  }();
  return on;
}

at::Tensor groupNorm(torch::nn::GroupNorm& norm, const at::Tensor& x, bool silu) {
  // bfloat16 always takes the kernel: LibTorch 1.13's bfloat16 channels_last GroupNorm is wrong.
  const bool wanted = fusedGroupNormOn() || x.scalar_type() == at::kBFloat16;
  if (c10::InferenceMode::is_enabled() && wanted && groupNormCpuServes(x)) {
    const auto& o = norm->options;
    return groupNormCpu(x, o.num_groups(), norm->weight, norm->bias, o.eps(), silu);
  }
  at::Tensor y = norm->forward(x);
  return silu ? swish(y) : y;
}

at::Tensor addTo(at::Tensor acc, const at::Tensor& other) { return inPlaceOk(acc) && inPlaceOk(other) ? acc.add_(other) : acc + other; }

}  // namespace

std::vector<int64_t> UNetConfig::hShape() const {
  const int64_t side = resolution >> (levels() - 1);
  return {ch * chMult.back(), side, side};
}

void UNetConfig::validate() const {
  if (inChannels < 1 || outChannels < 1) invalidArgument("UNet in/out channels must be positive");
  if (ch < 32 || ch % 32 != 0) invalidArgument("UNet ch must be a positive multiple of 32 (GroupNorm has 32 groups), got " + std::to_string(ch));
  if (chMult.empty() || chMult.size() > 8) invalidArgument("UNet chMult must have 1 to 8 entries");
  for (int64_t m : chMult) if (m < 1 || m > 64) invalidArgument("UNet chMult entries must be in [1, 64]");
  if (numResBlocks < 1 || numResBlocks > 16) invalidArgument("UNet numResBlocks must be in [1, 16]");
  if (!(dropout >= 0 && dropout < 1)) invalidArgument("UNet dropout must be in [0, 1)");
  if (resolution < 1 || resolution % (int64_t{1} << (levels() - 1)) != 0) {
    invalidArgument("UNet resolution " + std::to_string(resolution) + " is not divisible by 2^(levels-1) = " +
                    std::to_string(int64_t{1} << (levels() - 1)));
  }
}

UNetConfig unetPreset(const std::string& name) {
  UNetConfig c;
  if (name == "celeba-hq-256") return c;
  if (name == "tiny") {
    c.ch = 32;
    c.chMult = {1, 2};
    c.numResBlocks = 1;
    c.attnResolutions = {8};
    c.resolution = 16;
    return c;
  }
  if (name == "small-64") {
    c.ch = 32;
    c.chMult = {1, 2, 2, 2};
    c.numResBlocks = 1;
    c.attnResolutions = {16};
    c.resolution = 64;
    return c;
  }
  invalidArgument("unknown UNet preset '" + name + "' (known: celeba-hq-256, small-64, tiny)");
}

at::Tensor timestepEmbedding(const at::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  const double scale = std::log(10000.0) / static_cast<double>(half - 1);
  at::Tensor freqs = at::exp(at::arange(half, t.options().dtype(at::kFloat)) * -scale);
  at::Tensor args = t.to(at::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
  at::Tensor emb = at::cat({at::sin(args), at::cos(args)}, 1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1});
  return emb;
}

ResnetBlockImpl::ResnetBlockImpl(int64_t in, int64_t out, int64_t tembChannels, double dropout)
    : in_(in), out_(out), dropout_(dropout) {
  norm1 = register_module("norm1", normalize(in));
  conv1 = register_module("conv1", conv(in, out, 3, 1, 1));
  tembProj = register_module("temb_proj", torch::nn::Linear(tembChannels, out));
  norm2 = register_module("norm2", normalize(out));
  conv2 = register_module("conv2", conv(out, out, 3, 1, 1));
  if (in != out) ninShortcut = register_module("nin_shortcut", conv(in, out, 1));
}

at::Tensor ResnetBlockImpl::forward(const at::Tensor& x, const at::Tensor& tembAct) {
  at::Tensor h = groupNorm(norm1, x, true);
  h = conv1->forward(h);
  h = addTo(h, tembProj->forward(tembAct).unsqueeze(-1).unsqueeze(-1));
  h = groupNorm(norm2, h, true);
  if (dropout_ > 0 && is_training()) h = at::dropout(h, dropout_, true);
  h = conv2->forward(h);
  return addTo(h, ninShortcut ? ninShortcut->forward(x) : x);
}

AttnBlockImpl::AttnBlockImpl(int64_t channels) {
  norm = register_module("norm", normalize(channels));
  q = register_module("q", conv(channels, channels, 1));
  k = register_module("k", conv(channels, channels, 1));
  v = register_module("v", conv(channels, channels, 1));
  projOut = register_module("proj_out", conv(channels, channels, 1));
}

at::Tensor AttnBlockImpl::forward(const at::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1), hh = x.size(2), ww = x.size(3);
  at::Tensor n = groupNorm(norm, x, false);
  at::Tensor qq = q->forward(n).reshape({b, c, hh * ww}).transpose(1, 2);  // [B, HW, C]
  at::Tensor kk = k->forward(n).reshape({b, c, hh * ww});                  // [B, C, HW]
  at::Tensor vv = v->forward(n).reshape({b, c, hh * ww});                  // [B, C, HW]
  // On the CPU, float32/float64 products go to OpenBLAS: one thread for these small ones (engine.h).
  const bool blas = x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
  std::optional<BlasThreadsScope> oneThread;
  if (blas) oneThread.emplace(1);
  at::Tensor w = at::softmax(at::bmm(qq, kk) * (1.0 / std::sqrt(static_cast<double>(c))), 2);  // [B, HWq, HWk]
  at::Tensor out = at::bmm(vv, w.transpose(1, 2)).reshape({b, c, hh, ww});
  oneThread.reset();
  return addTo(projOut->forward(out), x);
}

UNetImpl::UNetImpl(const UNetConfig& config) : config_(config) {
  config_.validate();
  const int64_t ch = config_.ch, tembCh = 4 * ch, levels = config_.levels();
  auto temb = container(*this, "temb");
  auto dense = container(*temb, "dense");
  dense0 = dense->register_module("0", torch::nn::Linear(ch, tembCh));
  dense1 = dense->register_module("1", torch::nn::Linear(tembCh, tembCh));
  convIn = register_module("conv_in", conv(config_.inChannels, ch, 3, 1, 1));

  auto isAttn = [&](int64_t res) {
    for (int64_t r : config_.attnResolutions) if (r == res) return true;
    return false;
  };
  std::vector<int64_t> inMult{1};
  inMult.insert(inMult.end(), config_.chMult.begin(), config_.chMult.end());

  auto downList = container(*this, "down");
  int64_t res = config_.resolution, blockIn = ch;
  down_.resize(levels);
  for (int64_t L = 0; L < levels; L++) {
    auto level = container(*downList, std::to_string(L));
    auto blocks = container(*level, "block");
    std::shared_ptr<torch::nn::Module> attns;
    blockIn = ch * inMult[L];
    const int64_t blockOut = ch * config_.chMult[L];
    for (int64_t i = 0; i < config_.numResBlocks; i++) {
      down_[L].blocks.push_back(blocks->register_module(std::to_string(i), ResnetBlock(blockIn, blockOut, tembCh, config_.dropout)));
      blockIn = blockOut;
      if (isAttn(res)) {
        if (!attns) attns = container(*level, "attn");
        down_[L].attns.push_back(attns->register_module(std::to_string(i), AttnBlock(blockIn)));
      }
    }
    if (L != levels - 1) {
      auto ds = container(*level, "downsample");
      if (config_.resampWithConv) down_[L].resample = ds->register_module("conv", conv(blockIn, blockIn, 3, 2, 0));
      res /= 2;
    }
  }

  auto mid = container(*this, "mid");
  midBlock1 = mid->register_module("block_1", ResnetBlock(blockIn, blockIn, tembCh, config_.dropout));
  midAttn = mid->register_module("attn_1", AttnBlock(blockIn));
  midBlock2 = mid->register_module("block_2", ResnetBlock(blockIn, blockIn, tembCh, config_.dropout));

  // Up path, built from the lowest resolution upwards, stored under the level's own index.
  auto upList = container(*this, "up");
  up_.resize(levels);
  std::vector<std::shared_ptr<torch::nn::Module>> upLevels(levels);
  for (int64_t L = 0; L < levels; L++) upLevels[L] = std::make_shared<torch::nn::Module>();
  for (int64_t L = levels - 1; L >= 0; L--) {
    auto level = upLevels[L];
    auto blocks = container(*level, "block");
    std::shared_ptr<torch::nn::Module> attns;
    const int64_t blockOut = ch * config_.chMult[L];
    int64_t skipIn = ch * config_.chMult[L];
    for (int64_t i = 0; i <= config_.numResBlocks; i++) {
      if (i == config_.numResBlocks) skipIn = ch * inMult[L];
      up_[L].blocks.push_back(blocks->register_module(std::to_string(i), ResnetBlock(blockIn + skipIn, blockOut, tembCh, config_.dropout)));
      blockIn = blockOut;
      if (isAttn(res)) {
        if (!attns) attns = container(*level, "attn");
        up_[L].attns.push_back(attns->register_module(std::to_string(i), AttnBlock(blockIn)));
      }
    }
    if (L != 0) {
      auto us = container(*level, "upsample");
      if (config_.resampWithConv) up_[L].resample = us->register_module("conv", conv(blockIn, blockIn, 3, 1, 1));
      res *= 2;
    }
  }
  for (int64_t L = 0; L < levels; L++) upList->register_module(std::to_string(L), upLevels[L]);

  normOut = register_module("norm_out", normalize(blockIn));
  convOut = register_module("conv_out", conv(blockIn, config_.outChannels, 3, 1, 1));
}

namespace {

std::mutex countersMutex;
UNetCounters counters;

// Adds the scope's wall time to the counters.
class CountScope {
 public:
  CountScope(bool encode, int64_t images) : encode_(encode), images_(images), start_(std::chrono::steady_clock::now()) {}
  ~CountScope() {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::lock_guard<std::mutex> lock(countersMutex);
    counters.seconds += s;
    if (encode_) {
      counters.encodeCalls++;
      counters.encodeImages += images_;
    } else {
      counters.decodeCalls++;
      counters.decodeImages += images_;
    }
  }

 private:
  bool encode_;
  int64_t images_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

UNetCounters unetCounters(bool reset) {
  std::lock_guard<std::mutex> lock(countersMutex);
  UNetCounters c = counters;
  if (reset) counters = UNetCounters{};
  return c;
}

UNetFeatures UNetImpl::encode(const at::Tensor& xIn, const at::Tensor& t) {
  CountScope count(true, xIn.size(0));
  const at::Tensor x = io_ ? xIn.to(convIn->weight.scalar_type()) : xIn;
  UNetFeatures f;
  at::Tensor temb = timestepEmbedding(t, config_.ch).to(x.scalar_type());
  temb = dense1->forward(swish(dense0->forward(temb)));
  f.tembAct = at::silu(temb);
  const int64_t levels = config_.levels();
  f.skips.reserve(levels * (config_.numResBlocks + 1) + 1);
  f.skips.push_back(convIn->forward(x));
  for (int64_t L = 0; L < levels; L++) {
    for (int64_t i = 0; i < config_.numResBlocks; i++) {
      at::Tensor h = down_[L].blocks[i]->forward(f.skips.back(), f.tembAct);
      if (!down_[L].attns.empty()) h = down_[L].attns[i]->forward(h);
      f.skips.push_back(h);
    }
    if (L != levels - 1) {
      const at::Tensor& last = f.skips.back();
      if (down_[L].resample) {
        f.skips.push_back(down_[L].resample->forward(at::constant_pad_nd(last, {0, 1, 0, 1}, 0)));
      } else {
        f.skips.push_back(at::avg_pool2d(last, 2, 2));
      }
    }
  }
  at::Tensor h = midBlock1->forward(f.skips.back(), f.tembAct);
  h = midAttn->forward(h);
  f.h = midBlock2->forward(h, f.tembAct);
  return f;
}

at::Tensor UNetImpl::decode(const at::Tensor& hIn, const UNetFeatures& f) {
  CountScope count(false, hIn.size(0));
  const int64_t levels = config_.levels();
  size_t next = f.skips.size();
  at::Tensor h = io_ ? hIn.to(convIn->weight.scalar_type()) : hIn;
  for (int64_t L = levels - 1; L >= 0; L--) {
    for (int64_t i = 0; i <= config_.numResBlocks; i++) {
      h = up_[L].blocks[i]->forward(at::cat({h, f.skips[--next]}, 1), f.tembAct);
      if (!up_[L].attns.empty()) h = up_[L].attns[i]->forward(h);
    }
    if (L != 0) {
      h = at::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2});
      if (up_[L].resample) h = up_[L].resample->forward(h);
    }
  }
  at::Tensor eps = convOut->forward(groupNorm(normOut, h, true));
  return io_ ? eps.to(*io_) : eps;
}

int64_t UNetImpl::parameterCount() const {
  int64_t n = 0;
  for (const auto& p : parameters(true)) n += p.numel();
  return n;
}

}  // namespace bia
