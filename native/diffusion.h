// The diffusion model: a UNet on a device/dtype (with its memory format and mixed precision), and
// what the DiffusionModel handle does with it (diffusion_js.h): create, load, forward, invert,
// decode. The UNet config travels with saved weights as JSON metadata under kUNetConfigKey.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ddim.h"
#include "job_context.h"
#include "unet.h"

namespace bia {

struct DiffusionState {
  UNet unet{nullptr};
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = at::kFloat;
  bool channelsLast = false;
  std::optional<at::ScalarType> autocast;  // mixed precision for forward / invert / decode
  // CPU bfloat16 autocast: a copy of the UNet with bfloat16 weights that computes in bfloat16 end to
  // end (channels_last), taking and returning float32 (UNetImpl::setMixed). LibTorch's own CPU
  // autocast casts every convolution's input and output and its bfloat16 channels_last GroupNorm is
  // wrong in 1.13, so the CPU never runs under it. Null elsewhere.
  UNet bf16{nullptr};
  // After unet's weights change (loadStateDict, a merged adapter): the bfloat16 copy is made again.
  void refreshCopies();
  // The network that forward / invert / decode run: bf16 where there is one, else unet.
  UNet inference() const { return bf16 ? bf16 : unet; }
  // The dtype LibTorch autocast runs in (CUDA only; the CPU's bfloat16 is bf16 above).
  std::optional<at::ScalarType> torchAutocast() const { return device.is_cpu() ? std::nullopt : autocast; }
  // The model's input: any tensor → its device, dtype and memory format.
  at::Tensor prepare(const at::Tensor& x) const;
};

// Where a model goes: device, dtype (float32, float16 or bfloat16), memory format and autocast.
struct DiffusionOptions {
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = at::kFloat;
  bool channelsLast = false;
  std::optional<at::ScalarType> autocast;
};

inline constexpr const char* kUNetConfigKey = "bia.unet.config";
std::string unetConfigToJson(const UNetConfig& c);
UNetConfig unetConfigFromJson(const std::string& text);  // BIA_CHECKPOINT_ERROR when it is not one

// A new model with LibTorch's default initialisation, seeded.
std::shared_ptr<DiffusionState> createDiffusion(const UNetConfig& config, uint64_t seed, const DiffusionOptions& o);
// Weights from a checkpoint. Without a config, the file's kUNetConfigKey metadata, else celeba-hq-256.
std::shared_ptr<DiffusionState> loadDiffusion(const std::string& path, const std::optional<UNetConfig>& config,
                                              const DiffusionOptions& o, bool strict, JobContext& ctx);

// Checks of the inputs against the model (BIA_INVALID_ARGUMENT):
// x must be [B, inCh, H, W] with H, W divisible by 2^(levels-1), floating point;
void checkImage(const at::Tensor& x, const UNetConfig& c, const char* what);
// h must be [B or 1, C_h, H/2^(L-1), W/2^(L-1)] for images of the given size;
void checkH(const at::Tensor& h, const UNetConfig& c, int64_t height, int64_t width, const char* what);
// and finite (on the compute thread: it reads the values).
void checkFinite(const at::Tensor& x, const char* what);

// ε and h of one UNet call at timesteps ts (1 or B of them), h replaced by hReplace and/or
// shifted by hDelta when defined. Float32 outputs.
struct ForwardResult {
  at::Tensor eps, h;
};
ForwardResult diffusionForward(const DiffusionState& st, const at::Tensor& x, const std::vector<int64_t>& ts,
                               const at::Tensor& hReplace, const at::Tensor& hDelta);
// DDIM inversion of x to x_lat at t0 (ddimInvert), float32 outputs.
InvertResult diffusionInvert(const DiffusionState& st, const at::Tensor& x, int64_t t0, int64_t steps, bool keepAll,
                             const JobContext& ctx);
// DDIM decoding of x_lat with h injected (ddimDecode), batchSize images at a time; float32.
at::Tensor diffusionDecode(const DiffusionState& st, const at::Tensor& xLat, const at::Tensor& h, const DecodeOptions& d,
                           int64_t batchSize, const JobContext& ctx);

}  // namespace bia
