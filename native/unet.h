// The DDPM UNet (Ho et al.; the PyTorch port used by SDEdit, DiffusionCLIP, Asyrp,
// BoundaryDiffusion and BIA), with parameter names equal to the official state_dict keys.
//
// h-space (Asyrp) is the output of the middle block. The forward pass is split into encode()
// (timestep embedding, down path, middle block → h) and decode() (up path from a possibly
// replaced or shifted h), so that callers can inject h and reuse one encoder pass for two
// decoder passes (the asymmetric process).
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

namespace bia {

struct UNetConfig {
  int64_t inChannels = 3;
  int64_t outChannels = 3;
  int64_t ch = 128;
  std::vector<int64_t> chMult{1, 1, 2, 2, 4, 4};
  int64_t numResBlocks = 2;
  std::vector<int64_t> attnResolutions{16};
  double dropout = 0.0;
  bool resampWithConv = true;
  int64_t resolution = 256;

  int64_t levels() const { return static_cast<int64_t>(chMult.size()); }
  // Channels and side of h for this config: [ch * chMult.back(), res / 2^(levels-1), same].
  std::vector<int64_t> hShape() const;
  void validate() const;  // throws BIA_INVALID_ARGUMENT
};

// Presets: "celeba-hq-256" (the official model), "tiny" (tests), "small-64" (the demo size).
UNetConfig unetPreset(const std::string& name);

class ResnetBlockImpl : public torch::nn::Module {
 public:
  ResnetBlockImpl(int64_t in, int64_t out, int64_t tembChannels, double dropout);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& tembAct);  // tembAct = swish(temb)

 private:
  int64_t in_, out_;
  double dropout_;
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, ninShortcut{nullptr};
  torch::nn::Linear tembProj{nullptr};
};
TORCH_MODULE(ResnetBlock);

class AttnBlockImpl : public torch::nn::Module {
 public:
  explicit AttnBlockImpl(int64_t channels);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d q{nullptr}, k{nullptr}, v{nullptr}, projOut{nullptr};
};
TORCH_MODULE(AttnBlock);

// Wall time spent inside UNet encode/decode calls (host time: on CUDA the kernels may still be
// running when a call returns), counted process-wide so benches can tell UNet time from the rest.
struct UNetCounters {
  int64_t encodeCalls = 0, decodeCalls = 0, encodeImages = 0, decodeImages = 0;
  double seconds = 0;
};
UNetCounters unetCounters(bool reset);

// What the encoder hands to the decoder.
struct UNetFeatures {
  at::Tensor tembAct;            // swish(temb), [B, 4ch]
  std::vector<at::Tensor> skips; // hs, in push order
  at::Tensor h;                  // middle-block output: h-space
};

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config);
  const UNetConfig& config() const { return config_; }

  // x [B, inCh, H, W] in the model's dtype/device; t [B] (float timesteps in [0, 999]).
  UNetFeatures encode(const at::Tensor& x, const at::Tensor& t);
  // ε from a (possibly edited) h and the encoder's skips.
  at::Tensor decode(const at::Tensor& h, const UNetFeatures& f);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t) { auto f = encode(x, t); return decode(f.h, f); }

  int64_t parameterCount() const;

  // Mixed precision by hand: encode() casts x to the weights' dtype, decode() casts h to it and ε to
  // `io` (the bfloat16 copy of a float32 model on the CPU: diffusion.h).
  void setMixed(at::ScalarType io) { io_ = io; }

 private:
  UNetConfig config_;
  std::optional<at::ScalarType> io_;
  torch::nn::Linear dense0{nullptr}, dense1{nullptr};
  torch::nn::Conv2d convIn{nullptr}, convOut{nullptr};
  torch::nn::GroupNorm normOut{nullptr};
  struct Level {
    std::vector<ResnetBlock> blocks;
    std::vector<AttnBlock> attns;
    torch::nn::Conv2d resample{nullptr};  // downsample (down path) or upsample (up path) conv
  };
  std::vector<Level> down_, up_;  // up_[L] is the level of resolution index L (official order)
  ResnetBlock midBlock1{nullptr}, midBlock2{nullptr};
  AttnBlock midAttn{nullptr};
};
TORCH_MODULE(UNet);

// Sinusoidal timestep embedding of the official code: [B] → [B, dim] (float32).
at::Tensor timestepEmbedding(const at::Tensor& t, int64_t dim);

}  // namespace bia
