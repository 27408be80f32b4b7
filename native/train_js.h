// The JS face of training (train.h): the Trainer and AttributeEstimator handles, and the addon's
// createTrainer / arcfaceLogits / createAttributeEstimator / loadAttributeEstimator.
#pragma once
#include <napi.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "handle.h"
#include "model_js.h"
#include "train.h"

namespace bia {

class TrainerHandle : public Handle<TrainerHandle, std::shared_ptr<TrainerState>> {
 public:
  static constexpr HandleNames kNames{"Trainer", "a Trainer", "trainer", "trainers are made by createTrainer()", false};
  static std::vector<Property> properties();
  using Handle::Handle;
};

class AttributeHandle : public ModelHandle<AttributeHandle, AttributeState> {
 public:
  static constexpr HandleNames kNames{"AttributeEstimator", "an AttributeEstimator", "attribute estimator",
                                      "attribute estimators are made by createAttributeEstimator() / loadAttributeEstimator()", false};
  static constexpr ModelJobs kJobs{"bia.attributes.load", "bia.attributes.save", true};
  static std::vector<Property> properties();
  static ModelView view(AttributeState& s) { return {*s.net, s.device, s.dtype}; }
  static void describe(const AttributeState& s, std::map<std::string, std::string>& metadata) {
    metadata[kAttributeConfigKey] = s.net->config().toJson();
  }
  using ModelHandle::ModelHandle;
};

// (target, model: {config | arch, width, embeddingSize; weights: [[name, Tensor]]}, options, jobOpts) → Promise<handle>
Napi::Value CreateTrainer(const Napi::CallbackInfo& info);
// (embeddings, weight, labels, margin, scale, jobOpts) → Promise<Tensor [B, C]>
Napi::Value ArcfaceLogits(const Napi::CallbackInfo& info);
// (config, seed, device, dtype, jobOpts) → Promise<handle>
Napi::Value CreateAttributeEstimator(const Napi::CallbackInfo& info);
// (path, device, dtype, strict, jobOpts) → Promise<handle>; the config is the file's
// "bia.attributes.config" metadata.
Napi::Value LoadAttributeEstimator(const Napi::CallbackInfo& info);

// The attribute estimator's config from JS ({inChannels, outputs, width, stages}, defaults for the
// missing ones).
AttributeConfig attributeConfigFromJs(Napi::Value v);

}  // namespace bia
