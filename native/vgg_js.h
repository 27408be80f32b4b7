// The JS face of the VGG16 perceptual distance (vgg.h): the PerceptualModel handle and the addon's
// createPerceptual / loadPerceptual.
#pragma once
#include <napi.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model_js.h"
#include "vgg.h"

namespace bia {

// PerceptualHandle::From(value, what) is the net of a JS PerceptualModel handle (main thread only):
// BIA_INVALID_ARGUMENT if `value` is not one ("<what> must be a PerceptualModel"), BIA_DISPOSED after
// dispose(). The pointer keeps the weights alive for a job that captured it, even if JS disposes the
// handle meanwhile.
class PerceptualHandle : public ModelHandle<PerceptualHandle, Vgg16Perceptual> {
 public:
  static constexpr HandleNames kNames{"PerceptualModel", "a PerceptualModel", "perceptual model",
                                      "perceptual models are made by createPerceptual() / loadPerceptual()", false};
  static constexpr ModelJobs kJobs{"bia.perceptual.load", "bia.perceptual.save", true};
  static std::vector<Property> properties();
  static ModelView view(Vgg16Perceptual& n) { return {n.module(), n.device(), n.dtype()}; }
  static void load(Vgg16Perceptual& n, const StateDict& entries, bool strict) { loadVgg16Weights(n, entries, strict, "the state dict"); }
  static void describe(const Vgg16Perceptual&, std::map<std::string, std::string>& metadata) { metadata["arch"] = "vgg16-features-relu3_3"; }
  using ModelHandle::ModelHandle;
};

// (seed, device, dtype, jobOpts) → Promise<handle>
Napi::Value CreatePerceptual(const Napi::CallbackInfo& info);
// (path, device, dtype, jobOpts) → Promise<handle>
Napi::Value LoadPerceptual(const Napi::CallbackInfo& info);

}  // namespace bia
