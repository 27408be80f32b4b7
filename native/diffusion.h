// The JS face of the diffusion model: a handle owning a UNet on a device/dtype, with async
// forward / invert / decode / state-dict calls (each a Job on the compute thread).
#pragma once
#include <napi.h>

#include <memory>
#include <optional>
#include <string>

#include "unet.h"

namespace bia {

struct DiffusionState {
  UNet unet{nullptr};
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = at::kFloat;
  bool channelsLast = false;
  std::optional<at::ScalarType> autocast;  // mixed precision for forward / invert / decode
  // The model's input: any tensor → its device, dtype and memory format.
  at::Tensor prepare(const at::Tensor& x) const;
};

class DiffusionHandle : public Napi::ObjectWrap<DiffusionHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<DiffusionState> state);
  explicit DiffusionHandle(const Napi::CallbackInfo& info);
  // The model behind a JS DiffusionModel handle (BIA_INVALID_ARGUMENT for anything else,
  // BIA_DISPOSED after dispose()).
  static std::shared_ptr<DiffusionState> From(Napi::Value value, const char* what = "diffusion model");

 private:
  std::shared_ptr<DiffusionState> state(const char* what = "diffusion model") const;
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value ParameterCount(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);      // sync: handles sharing the weights
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);  // (entries, strict, jobOpts)
  Napi::Value Forward(const Napi::CallbackInfo& info);        // (x, t[], opts, jobOpts)
  Napi::Value Invert(const Napi::CallbackInfo& info);         // (x, opts, jobOpts)
  Napi::Value Decode(const Napi::CallbackInfo& info);         // (xLat, h|null, opts, jobOpts)
  Napi::Value Save(const Napi::CallbackInfo& info);           // (path, metadata, jobOpts): safetensors

  std::shared_ptr<DiffusionState> state_;
};

// UNet configs across the boundary and in files: a preset name or a (partial) config object from JS,
// and the JSON that travels with saved weights as safetensors metadata under kUNetConfigKey.
inline constexpr const char* kUNetConfigKey = "bia.unet.config";
UNetConfig unetConfigFromJs(Napi::Value v);
std::string unetConfigToJson(const UNetConfig& c);
UNetConfig unetConfigFromJson(const std::string& text);  // BIA_CHECKPOINT_ERROR when it is not one

// (config: string preset | object, seed, device, dtype, channelsLast, autocast, jobOpts) → Promise<handle>
Napi::Value CreateDiffusion(const Napi::CallbackInfo& info);
// (path, config | null, device, dtype, channelsLast, autocast, strict, jobOpts) → Promise<handle>.
// Without a config, the file's "bia.unet.config" metadata, else celeba-hq-256.
Napi::Value LoadDiffusion(const Napi::CallbackInfo& info);
// The preset's config as a plain object.
Napi::Value DiffusionPreset(const Napi::CallbackInfo& info);

}  // namespace bia
