// The common face of the identity encoders (ArcFace family): IR-SE50 (TreB1eN), insightface's
// iresnet r18/r34/r50/r100, and MobileFaceNet (TreB1eN). Each is a torch::nn::Module whose
// parameter and buffer names equal the official state_dict keys, built for any width so tests
// can use tiny versions of the same code.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

namespace bia {

class IdentityNet {
 public:
  virtual ~IdentityNet() = default;
  // x: [B, 3, 112, 112], already normalised as the network expects ((x/255 − 0.5)/0.5, i.e. in
  // [-1, 1]). Returns the raw embedding [B, D] (not L2-normalised; the caller normalises).
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  virtual torch::nn::Module& module() = 0;
  virtual int64_t embeddingSize() const = 0;
  virtual std::string arch() const = 0;
};

// Construct by architecture name: "ir_se50", "iresnet18", "iresnet34", "iresnet50", "iresnet100",
// "mobilefacenet". `width` scales every channel count (1.0 = the official network; tests use
// e.g. 0.125); `embeddingSize` is 512 for the official networks.
std::shared_ptr<IdentityNet> makeIdentityNet(const std::string& arch, double width = 1.0, int64_t embeddingSize = 512);

// Defined in native/mobilefacenet.cc.
std::shared_ptr<IdentityNet> makeMobileFaceNet(double width, int64_t embeddingSize);

}  // namespace bia
