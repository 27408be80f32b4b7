// Training: one Trainer per network (the DDPM UNet with ε-prediction, an identity encoder with an
// ArcFace head and an optional auxiliary regression head, or the attribute estimator), AdamW with
// decoupled weight decay written in ATen ops (its state is saved and restored exactly), an EMA of the
// weights, and safetensors checkpoints from which a run resumes bit-identically on the CPU.
//
// Schedules (learning rate, ArcFace margin) live in TS: every step() receives its lr and margin.
// All randomness of step k (timesteps, noise, dropout, flips, augmentation) is drawn from generators
// seeded with (seed, k), so a resumed run repeats exactly what an uninterrupted one would have done.
//
// The attribute estimator (a small CNN regressing a float vector per image, used only to measure
// attribute preservation) is defined here too. The JS handles (Trainer, AttributeEstimator) are
// train_js.h.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "diffusion.h"
#include "identity.h"
#include "identity_net.h"
#include "job_context.h"
#include "lora.h"
#include "unet.h"

namespace bia {

// ---------------------------------------------------------------------------------------------
// The attribute estimator: `stages` stages of [conv3×3 stride 2 → GroupNorm → SiLU → conv3×3 →
// GroupNorm → SiLU] with width·2^i channels (capped at 8·width), global average pooling, then a
// linear layer to `outputs` numbers. Any input size ≥ 2^stages. Keys: stages.{i}.{conv1,norm1,conv2,
// norm2}.{weight,bias}, head.{weight,bias}.
struct AttributeConfig {
  int64_t inChannels = 3;
  int64_t outputs = 8;
  int64_t width = 32;
  int64_t stages = 4;
  void validate() const;  // BIA_INVALID_ARGUMENT
  std::string toJson() const;
  static AttributeConfig fromJson(const std::string& text);  // BIA_CHECKPOINT_ERROR when malformed
};

class AttributeNetImpl : public torch::nn::Module {
 public:
  explicit AttributeNetImpl(const AttributeConfig& config);
  at::Tensor forward(const at::Tensor& x);   // [B, inCh, H, W] in [-1, 1] → [B, outputs]
  at::Tensor features(const at::Tensor& x);  // the mean-pooled last stage, the head's input → [B, channels]
  const AttributeConfig& config() const { return config_; }

 private:
  AttributeConfig config_;
  std::vector<torch::nn::Conv2d> conv1_, conv2_;
  std::vector<torch::nn::GroupNorm> norm1_, norm2_;
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(AttributeNet);

struct AttributeState {
  AttributeNet net{nullptr};
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = at::kFloat;
};

// Build an estimator on a device/dtype (eval mode) from a config, optionally loading weights.
std::shared_ptr<AttributeState> makeAttributeState(const AttributeConfig& config, const StateDict* weights, c10::Device device,
                                                   c10::ScalarType dtype);

inline constexpr const char* kAttributeConfigKey = "bia.attributes.config";  // the config, as metadata of saved weights
// A new estimator with LibTorch's default initialisation, seeded.
std::shared_ptr<AttributeState> createAttributeState(const AttributeConfig& config, uint64_t seed, c10::Device device, c10::ScalarType dtype);
// An estimator saved by this library: the config from the file's kAttributeConfigKey metadata.
std::shared_ptr<AttributeState> loadAttributeState(const std::string& path, c10::Device device, c10::ScalarType dtype, bool strict,
                                                   JobContext& ctx);
// BIA_INVALID_ARGUMENT unless x is [B, inCh, H, W] of floating point with sides of at least 2^stages.
void checkAttributeImages(const at::Tensor& x, const AttributeConfig& c);
// The outputs [B, outputs] of images (or with features, the head's input [B, channels]), float32.
at::Tensor attributePredict(const AttributeState& st, const at::Tensor& x, bool features);

// ---------------------------------------------------------------------------------------------
// ArcFace logits: s·cos(θ_ij + m·[j = y_i]) with cos θ_ij = ê_i·Ŵ_j (rows L2-normalised); with m = 0,
// the normalised softmax's s·cos θ. embeddings [B, D], weight [C, D], labels [B] (int64).
at::Tensor arcfaceLogits(const at::Tensor& embeddings, const at::Tensor& weight, const at::Tensor& labels, double margin, double scale);

// ---------------------------------------------------------------------------------------------
// AdamW (Loshchilov & Hutter; torch.optim.AdamW's arithmetic): p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g;
// v ← β2·v + (1−β2)·g²; p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps). Weight decay applies to
// tensors of two or more dimensions (conv / linear weights, the ArcFace matrix), not to biases,
// norms or PReLU slopes.
struct AdamWHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.0;
};

class AdamW {
 public:
  explicit AdamW(StateDict params);  // named trainable tensors (requires_grad)
  void step(const AdamWHyper& h);    // one update from the tensors' .grad()
  int64_t steps() const { return steps_; }
  void setSteps(int64_t s) { steps_ = s; }
  const StateDict& params() const { return params_; }
  std::vector<at::Tensor>& expAvg() { return expAvg_; }
  std::vector<at::Tensor>& expAvgSq() { return expAvgSq_; }

 private:
  StateDict params_;
  std::vector<at::Tensor> expAvg_, expAvgSq_;
  int64_t steps_ = 0;
};

// ---------------------------------------------------------------------------------------------
enum class TrainTarget { Diffusion, Encoder, Attributes };
const char* targetName(TrainTarget t);                    // "diffusion", "encoder", "attributes"
std::optional<TrainTarget> parseTrainTarget(const std::string& name);  // the inverse

struct TrainerOptions {
  AdamWHyper adam;  // lr here is the default when a step gives none
  double emaDecay = 0.0;  // 0: no EMA
  bool channelsLast = false;
  // Name prefixes of the network parameters that learn ("up.", "norm_out.", …); empty: all of them.
  // The others stay frozen and have no optimiser state.
  std::vector<std::string> trainable;
  // > 0: the network stays frozen and low-rank adapters of this rank (lora.h) on the Conv2d / Linear
  // weights selected by `trainable` learn instead; adapterAlpha (0: = the rank) scales them.
  int64_t adapterRank = 0;
  double adapterAlpha = 0.0;
  uint64_t seed = 0;
  double gradClip = 0.0;  // max global L2 norm of the gradients; 0: no clipping
  // Encoder: the ArcFace head and the auxiliary regression head.
  int64_t classes = 0;
  int64_t auxDim = 0;
  double auxWeight = 1.0;
  double scale = 32.0;
  // Augmentation of the batch (in C++, per image, from the step's generator).
  bool flip = false;      // random horizontal flip (p 0.5)
  double blur = 0.0;      // encoder / attributes: Gaussian blur σ ~ U[0, blur] pixels
  double blurProb = 0.5;  // share of images blurred
  double noise = 0.0;     // encoder / attributes: + N(0, σ²), σ ~ U[0, noise]
  c10::Device device{c10::kCPU};
};

struct TrainBatch {
  at::Tensor images;   // [B, C, H, W] floating point in [-1, 1]; diffusion distillation: the noisy x_t
  at::Tensor labels;   // encoder: [B] integer identity labels (ArcFace head); diffusion distillation: [B] timesteps
  at::Tensor targets;  // encoder: [B, auxDim] (auxiliary head); attributes: [B, outputs];
                       // diffusion distillation: [B, C, H, W], the ε the UNet must predict at (x_t, t)
  // Diffusion distillation, optional (with identityEncoder): identity terms on the clean image
  // x̂0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t that the UNet's ε̂ implies, E the frozen identityEncoder (its weights get no
  // gradient): identityWeight · mean over the rows i with a non-zero identity_i of relu(cos(E(x̂0_i), identity_i)
  // − margin), and identityKeepWeight · mean over the rows with a non-zero identityKeep_i of
  // relu(cos(E(x̂0 of the target ε), identityKeep_i) − cos(E(x̂0_i), identityKeep_i)).
  at::Tensor identity;      // [B, D] embeddings to move away from; rows of zeros: no such term for that state
  at::Tensor identityKeep;  // [B, D] embeddings to stay as like as the target; rows of zeros: none
  std::shared_ptr<EncoderState> identityEncoder;
  double identityWeight = 0.0, identityMargin = 0.0, identityKeepWeight = 0.0;
  Protocol identityProtocol = Protocol::Resize;
};

struct StepResult {
  double loss = 0;
  std::vector<std::pair<std::string, double>> parts;  // the loss's terms and diagnostics
  double seconds = 0;
  int64_t step = 0;    // optimiser steps done after this call
  int64_t images = 0;  // batch size
};

// Everything a trainer owns. Used on the compute thread only (jobs run one at a time), except
// checkBatch (JS thread) and the read-only accessors.
struct TrainerState {
  TrainTarget target = TrainTarget::Diffusion;
  TrainerOptions options;
  bool emaWarmup = false;  // decay_k = min(emaDecay, (1 + k)/(10 + k))
  UNet unet{nullptr};
  std::shared_ptr<IdentityNet> encoder;
  std::string arch;
  double width = 1.0;
  AttributeNet attributes{nullptr};
  std::shared_ptr<torch::nn::Module> head;  // encoder heads: arcface.weight [classes, D], aux (Linear D → auxDim)
  at::Tensor arcWeight;
  torch::nn::Linear aux{nullptr};
  std::unique_ptr<AdamW> optimizer;
  LoraSet lora;         // the adapters when options.adapterRank > 0
  StateDict ema;        // the network's parameters then buffers, EMA'd (parameters) or copied (buffers)
  at::Tensor alphaBar;  // diffusion: ᾱ_t, float64 [1000]

  torch::nn::Module& module();
  std::string modelJson() const;    // what identifies the network (config / arch, width, D)
  std::string optionsJson() const;
  // The checkpoint layout over live tensors: network (official names), head.*, lora.*, ema.*, optim.exp_avg.*, optim.exp_avg_sq.*.
  StateDict liveState();
  // Copies (CPU, contiguous) of liveState plus optim.step.
  StateDict checkpointState();
  std::map<std::string, std::string> checkpointMetadata(std::map<std::string, std::string> user) const;
  // Write checkpointState and checkpointMetadata(user) as safetensors (progress "write"); returns
  // the step count written.
  int64_t save(const std::string& path, const std::map<std::string, std::string>& user, JobContext& ctx);
  // Restore everything from a checkpoint written by checkpointState; returns the user metadata.
  std::map<std::string, std::string> restore(const std::string& path, JobContext& ctx);
  // {target, model, options, parameterCount, headParameterCount, device} as JSON.
  std::string infoJson();
  void updateEma();
  StateDict weightsForModel(bool useEma);
  void checkBatch(const TrainBatch& b) const;  // shapes and dtypes, BIA_INVALID_ARGUMENT
  StepResult trainStep(const TrainBatch& b, double lr, double margin);
  StepResult evaluate(const TrainBatch& b, double margin, uint64_t seed);
  // The gradient of evaluate()'s loss (eval mode, seeded draws) with respect to every trainable tensor,
  // under the optimiser's names (the network's, head.*, lora.*); nothing is updated.
  StateDict gradients(const TrainBatch& b, double margin, uint64_t seed);
};

// What a trainer starts from: the network's config (the target's fields) and optionally its weights.
struct ModelSpec {
  UNetConfig unet;
  std::string arch;
  double width = 1.0;
  int64_t embeddingSize = 512;
  AttributeConfig attributes;
  StateDict weights;
};
std::shared_ptr<TrainerState> buildTrainer(TrainTarget target, const ModelSpec& spec, const TrainerOptions& o, bool emaWarmup);

// The trained network as a new model on the trainer's device (a copy: EMA weights when asked and
// present); the one of the trainer's target is set.
struct TrainedModel {
  std::shared_ptr<DiffusionState> diffusion;
  std::shared_ptr<EncoderState> encoder;
  std::shared_ptr<AttributeState> attributes;
};
TrainedModel trainedModel(TrainerState& st, bool useEma);

}  // namespace bia
