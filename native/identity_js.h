// The JS face of the identity encoders (identity.h): the IdentityEncoder handle and the addon's
// createIdentityEncoder / loadIdentityEncoder / cosineSimilarity.
#pragma once
#include <napi.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "identity.h"
#include "model_js.h"

namespace bia {

class EncoderHandle : public ModelHandle<EncoderHandle, EncoderState> {
 public:
  static constexpr HandleNames kNames{"IdentityEncoder", "an IdentityEncoder", "identity encoder",
                                      "identity encoders are made by createIdentityEncoder() / loadIdentityEncoder()", false};
  static constexpr ModelJobs kJobs{"bia.identity.load", "bia.identity.save", false};
  static std::vector<Property> properties();
  static ModelView view(EncoderState& s) { return {s.net->module(), s.device, s.dtype}; }
  static void describe(const EncoderState& s, std::map<std::string, std::string>& metadata) { metadata["arch"] = s.arch; }
  using ModelHandle::ModelHandle;
};

// (arch, width, embeddingSize, seed, device, dtype, jobOpts) → Promise<handle>
Napi::Value CreateIdentityEncoder(const Napi::CallbackInfo& info);
// (path, arch | null, device, dtype, strict, jobOpts) → Promise<handle>
Napi::Value LoadIdentityEncoder(const Napi::CallbackInfo& info);
// (a [N,D], b [M,D] or [N,D], matrix: bool, jobOpts) → Promise<Tensor> cosine similarities
Napi::Value CosineSimilarity(const Napi::CallbackInfo& info);

}  // namespace bia
