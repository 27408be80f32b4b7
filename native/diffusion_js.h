// The JS face of the diffusion model (diffusion.h): the DiffusionModel handle, with async
// forward / invert / decode / state-dict calls (each a Job on the compute thread), and the
// addon's createDiffusion / loadDiffusion / diffusionPreset.
#pragma once
#include <napi.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "diffusion.h"
#include "model_js.h"

namespace bia {

class DiffusionHandle : public ModelHandle<DiffusionHandle, DiffusionState> {
 public:
  static constexpr HandleNames kNames{"DiffusionModel", "a DiffusionModel", "diffusion model",
                                      "diffusion models are made by createDiffusion() / loadDiffusion()", true};
  static constexpr ModelJobs kJobs{"bia.diffusion.load", "bia.diffusion.save", false};
  static std::vector<Property> properties();
  static ModelView view(DiffusionState& s) { return {*s.unet, s.device, s.dtype}; }
  static void describe(const DiffusionState& s, std::map<std::string, std::string>& metadata);
  // loadStateDict(): into the UNet, then the CPU bfloat16 copy made again.
  static void load(DiffusionState& s, const StateDict& entries, bool strict);
  using ModelHandle::ModelHandle;
};

// A preset name or a (partial) config object from JS.
UNetConfig unetConfigFromJs(Napi::Value v);

// (config: string preset | object, seed, device, dtype, channelsLast, autocast, jobOpts) → Promise<handle>
Napi::Value CreateDiffusion(const Napi::CallbackInfo& info);
// (path, config | null, device, dtype, channelsLast, autocast, strict, jobOpts) → Promise<handle>.
// Without a config, the file's "bia.unet.config" metadata, else celeba-hq-256.
Napi::Value LoadDiffusion(const Napi::CallbackInfo& info);
// The preset's config as a plain object.
Napi::Value DiffusionPreset(const Napi::CallbackInfo& info);

}  // namespace bia
