// Identity encoders as JS objects: construction by architecture, checkpoint loading with the
// architecture and width read from the keys, the input protocols, and L2-normalised embeddings.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "identity_net.h"

namespace bia {

// How images reach the 112×112 encoder input (all differentiable):
//  Bia:         256² in [-1,1] → rows 35:223, cols 32:220 (188²) → adaptive average pool to 112
//               (BIA / DiffusionCLIP's identity loss)
//  Insightface: 112² aligned faces in [-1,1], i.e. (x/255 − 0.5)/0.5, passed as they are
//  Resize:      any size → 112² (adaptive average pooling down, bilinear up)
enum class Protocol { Bia, Insightface, Resize };
Protocol parseProtocol(const std::string& name);
void checkProtocolInput(at::IntArrayRef sizes, Protocol p);  // BIA_INVALID_ARGUMENT on a wrong shape
at::Tensor preprocess(const at::Tensor& x, Protocol p);
at::Tensor l2normalize(const at::Tensor& e);  // rows to unit length
void validateArch(const std::string& arch, double width, int64_t embeddingSize);

// Normalised embeddings [B, D] of images [B, 3, H, W] (float32 out).
at::Tensor embed(IdentityNet& net, const at::Tensor& x, Protocol p, bool normalize = true);

struct EncoderState {
  std::shared_ptr<IdentityNet> net;
  std::string arch;
  double width = 1.0;
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = at::kFloat;
  // Pixel normalisation of the weights, applied to [-1, 1] images before the network.
  double inputScale = 1.0, inputShift = 0.0;
  std::string inputNormalisation = "(x/255 - 0.5) / 0.5";
};

class EncoderHandle : public Napi::ObjectWrap<EncoderHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<EncoderState> state);
  explicit EncoderHandle(const Napi::CallbackInfo& info);
  // The encoder behind a JS IdentityEncoder handle (BIA_INVALID_ARGUMENT for anything else,
  // BIA_DISPOSED after dispose()).
  static std::shared_ptr<EncoderState> From(Napi::Value value, const char* what = "identity encoder");

 private:
  std::shared_ptr<EncoderState> state() const;
  Napi::Value Arch(const Napi::CallbackInfo& info);
  Napi::Value Width(const Napi::CallbackInfo& info);
  Napi::Value EmbeddingSize(const Napi::CallbackInfo& info);
  Napi::Value ParameterCount(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);  // (entries, strict, jobOpts)
  Napi::Value Embed(const Napi::CallbackInfo& info);          // (x, {protocol, normalize}, jobOpts)
  Napi::Value Save(const Napi::CallbackInfo& info);           // (path, metadata, jobOpts)
  Napi::Value InputNormalisation(const Napi::CallbackInfo& info);
  std::shared_ptr<EncoderState> state_;
};

// (arch, width, embeddingSize, seed, device, dtype, jobOpts) → Promise<handle>
Napi::Value CreateIdentityEncoder(const Napi::CallbackInfo& info);
// (path, arch | null, device, dtype, strict, jobOpts) → Promise<handle>
Napi::Value LoadIdentityEncoder(const Napi::CallbackInfo& info);
// (a [N,D], b [M,D] or [N,D], matrix: bool, jobOpts) → Promise<Tensor> cosine similarities
Napi::Value CosineSimilarity(const Napi::CallbackInfo& info);

}  // namespace bia
