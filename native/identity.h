// Identity encoders: construction by architecture, checkpoint loading with the architecture and
// width read from the keys, the input protocols, and L2-normalised embeddings. Their JS face, the
// IdentityEncoder handle, is identity_js.h.
#pragma once

#include <memory>
#include <string>

#include "identity_net.h"
#include "job_context.h"

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

// A new encoder with LibTorch's default initialisation, seeded (eval mode, on device/dtype).
std::shared_ptr<EncoderState> createEncoder(const std::string& arch, double width, int64_t embeddingSize, uint64_t seed,
                                            c10::Device device, c10::ScalarType dtype);
// An encoder from a checkpoint: the architecture, width and embedding size from its keys and shapes
// (BIA_CHECKPOINT_MISMATCH unless `arch`, when not empty, is what the file holds); the pixel
// normalisation from its "input" metadata.
std::shared_ptr<EncoderState> loadEncoder(const std::string& path, const std::string& arch, c10::Device device,
                                          c10::ScalarType dtype, bool strict, JobContext& ctx);
// Images [B, 3, H, W] in [-1, 1] as the encoder's weights expect them: on its device and dtype, with its pixel
// normalisation (differentiable; embed() then gives the embeddings).
at::Tensor encoderInput(const EncoderState& st, const at::Tensor& x);
// The embeddings [B, D] (float32) of images [B, 3, H, W] in [-1, 1] (BIA_INVALID_ARGUMENT for NaN or Inf).
at::Tensor encoderEmbed(const EncoderState& st, const at::Tensor& x, Protocol p, bool normalize);
// Cosine similarities of embeddings: all pairs [N, M] (matrix) or row by row [N].
at::Tensor cosineSimilarity(const at::Tensor& a, const at::Tensor& b, bool matrix);

}  // namespace bia
