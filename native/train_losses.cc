// The Trainer's per-target losses (ε-prediction MSE, ArcFace + auxiliary regression, attribute
// MSE), the batch augmentation, and one optimiser step (see train.h).
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <vector>

#include "device.h"
#include "errors.h"
#include "identity.h"
#include "train.h"

namespace bia {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The seed of step k's randomness: a function of (seed, k) only, so that a resumed run draws what
// an uninterrupted one would have drawn. Kept below 2^63 (torch seeds are read as int64 in places).
uint64_t stepSeed(uint64_t seed, uint64_t k) { return splitmix64(seed ^ splitmix64(k + 0x5EEDull)) >> 1; }

// The adapters' sums in the layers for one loss computation; the base weights back afterwards, so that
// nothing outside a step (saving, snapshots, model copies) sees a stale graph.
class AdaptersApplied {
 public:
  explicit AdaptersApplied(const LoraSet& lora) : lora_(lora) { lora_.apply(); }
  ~AdaptersApplied() { lora_.restore(); }

 private:
  const LoraSet& lora_;
};

// The network (and the heads) in training mode for one forward pass; eval() again afterwards.
class TrainMode {
 public:
  TrainMode(torch::nn::Module& m, torch::nn::Module* head) : m_(m), head_(head) {
    m_.train(true);
    if (head_) head_->train(true);
  }
  ~TrainMode() {
    m_.eval();
    if (head_) head_->eval();
  }

 private:
  torch::nn::Module& m_;
  torch::nn::Module* head_;
};

struct LossTerms {
  at::Tensor loss;
  std::vector<std::pair<std::string, at::Tensor>> parts;
};

// Per-image Gaussian blur, σ_i ~ U[0, maxSigma] for a share `prob` of the images (σ = 0: unchanged),
// separable, reflect-padded.
at::Tensor blurBatch(const at::Tensor& x, double maxSigma, double prob) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t r = std::min<int64_t>(static_cast<int64_t>(std::ceil(3 * maxSigma)), std::min(h, w) - 1);
  if (r < 1) return x;
  const auto opts = x.options();
  at::Tensor sigma = at::rand({b}, opts) * maxSigma;
  at::Tensor on = at::rand({b}, opts) < prob;
  sigma = at::where(on, sigma, at::zeros_like(sigma)).clamp_min(1e-3);
  at::Tensor pos = at::arange(-r, r + 1, opts);
  at::Tensor k = at::exp(-(pos * pos).unsqueeze(0) / (2 * sigma * sigma).unsqueeze(1));  // [B, 2r+1]
  k = k / k.sum(1, true);
  at::Tensor kk = k.repeat_interleave(c, 0);  // [B·C, 2r+1]
  at::Tensor y = x.contiguous().reshape({1, b * c, h, w});
  const at::Tensor noBias;
  const std::vector<int64_t> one{1, 1}, zero{0, 0};
  y = at::conv2d(at::reflection_pad2d(y, {r, r, 0, 0}), kk.view({b * c, 1, 1, 2 * r + 1}), noBias, one, zero, one, b * c);
  y = at::conv2d(at::reflection_pad2d(y, {0, 0, r, r}), kk.view({b * c, 1, 2 * r + 1, 1}), noBias, one, zero, one, b * c);
  return y.reshape({b, c, h, w});
}

at::Tensor flipBatch(const at::Tensor& x) {
  at::Tensor mask = (at::rand({x.size(0)}, x.options()) < 0.5).view({-1, 1, 1, 1});
  return at::where(mask, x.flip({3}), x);
}

std::pair<at::Tensor, at::Tensor> arcfaceWithCos(const at::Tensor& e, const at::Tensor& w, const at::Tensor& labels, double margin, double scale) {
  at::Tensor cos = at::mm(l2normalize(e), l2normalize(w).t());
  at::Tensor logits = cos;
  if (margin > 0) {
    at::Tensor idx = labels.view({-1, 1});
    at::Tensor target = cos.gather(1, idx).clamp(-1 + 1e-7, 1 - 1e-7);
    logits = cos.scatter(1, idx, at::cos(at::acos(target) + margin));
  }
  return {logits * scale, cos};
}

std::string shapeStr(at::IntArrayRef s) { return c10::str(s); }

}  // namespace

at::Tensor arcfaceLogits(const at::Tensor& embeddings, const at::Tensor& weight, const at::Tensor& labels, double margin, double scale) {
  return arcfaceWithCos(embeddings, weight, labels, margin, scale).first;
}

void TrainerState::checkBatch(const TrainBatch& b) const {
  const at::Tensor& x = b.images;
  if (x.dim() != 4 || x.size(0) < 1) invalidArgument("batch.images must be [B, C, H, W], got " + shapeStr(x.sizes()));
  if (!x.is_floating_point()) invalidArgument("batch.images must be a floating-point tensor in [-1, 1]");
  const int64_t n = x.size(0);
  auto needTargets = [&](int64_t dim, const char* what) {
    if (!b.targets.defined()) invalidArgument(std::string("batch.targets [B, ") + std::to_string(dim) + "] are needed (" + what + ")");
    if (b.targets.dim() != 2 || b.targets.size(0) != n || b.targets.size(1) != dim || !b.targets.is_floating_point()) {
      invalidArgument("batch.targets must be a floating-point [" + std::to_string(n) + ", " + std::to_string(dim) + "] tensor, got " +
                      shapeStr(b.targets.sizes()));
    }
  };
  switch (target) {
    case TrainTarget::Diffusion: {
      const UNetConfig& c = unet->config();
      const int64_t div = int64_t{1} << (c.levels() - 1);
      if (x.size(1) != c.inChannels) invalidArgument("batch.images has " + std::to_string(x.size(1)) + " channels; the UNet takes " + std::to_string(c.inChannels));
      if (x.size(2) % div != 0 || x.size(3) % div != 0 || x.size(2) < div) {
        invalidArgument("batch.images is " + std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)) + "; sides must be multiples of " + std::to_string(div));
      }
      // Distillation (labels = timesteps, targets = ε): both or neither.
      if (b.labels.defined() != b.targets.defined()) invalidArgument("a diffusion distillation batch needs both labels (timesteps [B]) and targets (ε, the images' shape)");
      if (b.labels.defined()) {
        if (b.labels.dim() != 1 || b.labels.size(0) != n || b.labels.is_floating_point() || b.labels.scalar_type() == at::kBool) {
          invalidArgument("batch.labels (timesteps) must be an integer [" + std::to_string(n) + "] tensor, got " + shapeStr(b.labels.sizes()));
        }
        if (b.targets.sizes() != x.sizes() || !b.targets.is_floating_point()) {
          invalidArgument("batch.targets (ε) must be a floating-point tensor of the images' shape " + shapeStr(x.sizes()) + ", got " + shapeStr(b.targets.sizes()));
        }
      }
      if (b.identityEncoder) {
        if (!b.labels.defined()) invalidArgument("batch.identity (identity terms on x̂0) needs a distillation batch (labels = timesteps, targets = ε)");
        if (!b.identity.defined() && !b.identityKeep.defined()) invalidArgument("batch.identity needs embeddings (to move away from) and/or keep (to stay like)");
        const int64_t d = b.identityEncoder->net->embeddingSize();
        for (const auto& [rows, what] : {std::pair{b.identity, "embeddings"}, std::pair{b.identityKeep, "keep"}}) {
          if (rows.defined() && (rows.dim() != 2 || rows.size(0) != n || rows.size(1) != d || !rows.is_floating_point())) {
            invalidArgument(std::string("batch.identity.") + what + " must be a floating-point [" + std::to_string(n) + ", " + std::to_string(d) +
                            "] tensor (one row per state, the encoder's size), got " + shapeStr(rows.sizes()));
          }
        }
        if (x.size(1) != 3) invalidArgument("batch.identity needs RGB states (3 channels) for the identity encoder");
        checkProtocolInput(x.sizes(), b.identityProtocol);
        if (!(b.identityWeight >= 0 && std::isfinite(b.identityWeight))) invalidArgument("batch.identity.weight must be a finite number ≥ 0");
        if (!(b.identityKeepWeight >= 0 && std::isfinite(b.identityKeepWeight))) invalidArgument("batch.identity.keepWeight must be a finite number ≥ 0");
        if (!(b.identityMargin >= -1 && b.identityMargin < 1)) invalidArgument("batch.identity.margin must be in [-1, 1)");
      }
      break;
    }
    case TrainTarget::Encoder:
      if (x.size(1) != 3) invalidArgument("batch.images must be RGB [B, 3, H, W], got " + shapeStr(x.sizes()));
      if (n < 2) invalidArgument("an encoder trains on batches of at least 2 images (BatchNorm needs batch statistics)");
      if (options.classes > 0) {
        if (!b.labels.defined()) invalidArgument("batch.labels (integer identities, [B]) are needed by the ArcFace head");
        if (b.labels.dim() != 1 || b.labels.size(0) != n || b.labels.is_floating_point() || b.labels.scalar_type() == at::kBool) {
          invalidArgument("batch.labels must be an integer [" + std::to_string(n) + "] tensor, got " + shapeStr(b.labels.sizes()));
        }
      }
      if (options.auxDim > 0) needTargets(options.auxDim, "the auxiliary regression head");
      break;
    case TrainTarget::Attributes: {
      const AttributeConfig& c = attributes->config();
      if (x.size(1) != c.inChannels) invalidArgument("batch.images must have " + std::to_string(c.inChannels) + " channels");
      const int64_t minSide = int64_t{1} << c.stages;
      if (x.size(2) < minSide || x.size(3) < minSide) invalidArgument("batch.images must be at least " + std::to_string(minSide) + " pixels on each side");
      needTargets(c.outputs, "the attribute values to regress");
      break;
    }
  }
}

namespace {

// Parameters of a frozen network made constants for the ops recorded while the guard lives (the graph keeps
// no edge to them, so a backward leaves their .grad alone); restored after.
class FrozenParameters {
 public:
  explicit FrozenParameters(torch::nn::Module& m) {
    for (auto& p : m.parameters()) {
      if (p.requires_grad()) {
        p.set_requires_grad(false);
        frozen_.push_back(p);
      }
    }
  }
  ~FrozenParameters() {
    for (auto& p : frozen_) p.set_requires_grad(true);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<at::Tensor> frozen_;
};

// The identity terms of a distillation batch (TrainBatch::identity, identityKeep): with x̂0 the clean image
// each state's ε implies and E the frozen encoder, `away` the mean over the rows with an `identity` embedding
// of relu(cos(E(x̂0), e) − margin), `keep` the mean over the rows with an `identityKeep` embedding of
// relu(cos(E(x̂0_target), e) − cos(E(x̂0), e)) (x̂0_target from the target ε, no gradient: no less like the
// person than the teacher's); undefined terms where no row has one. The cosines come along for the report.
struct IdentityTerms {
  at::Tensor away, awayCos, keep, keepCos;
};

IdentityTerms identityTerms(const TrainerState& st, const TrainBatch& b, const at::Tensor& x, const at::Tensor& t, const at::Tensor& pred) {
  const c10::Device dev = st.options.device;
  const EncoderState& enc = *b.identityEncoder;
  for (const auto& [rows, what] : {std::pair{b.identity, "embeddings"}, std::pair{b.identityKeep, "keep"}}) {
    if (rows.defined() && !at::isfinite(rows).all().item<bool>()) invalidArgument(std::string("batch.identity.") + what + " holds NaN or infinite values");
  }
  const at::Tensor away = b.identity.defined() ? b.identity.to(dev, at::kFloat) : at::Tensor();
  const at::Tensor keep = b.identityKeep.defined() ? b.identityKeep.to(dev, at::kFloat) : at::Tensor();
  auto activeRows = [](const at::Tensor& rows) { return rows.defined() ? (rows.norm(2, {1}) > 0).nonzero().squeeze(1) : at::Tensor(); };
  auto x0Of = [&](const at::Tensor& idx, const at::Tensor& eps) {
    at::Tensor ab = st.alphaBar.index_select(0, t.index_select(0, idx)).to(at::kFloat).view({-1, 1, 1, 1});
    return (x.index_select(0, idx).to(at::kFloat) - (1 - ab).sqrt() * eps.index_select(0, idx).to(at::kFloat)) / ab.sqrt();
  };
  auto embedX0 = [&](const at::Tensor& x0) {
    FrozenParameters frozen(enc.net->module());
    return embed(*enc.net, encoderInput(enc, x0.contiguous()), b.identityProtocol).to(dev);
  };
  const at::Tensor awayIdx = activeRows(away), keepIdx = activeRows(keep);
  const int64_t nAway = awayIdx.defined() ? awayIdx.numel() : 0, nKeep = keepIdx.defined() ? keepIdx.numel() : 0;
  IdentityTerms r;
  if (nAway + nKeep == 0) return r;
  std::vector<at::Tensor> idx;
  if (nAway > 0) idx.push_back(awayIdx);
  if (nKeep > 0) idx.push_back(keepIdx);
  const at::Tensor e = embedX0(x0Of(at::cat(idx), pred));  // one encoder pass for both terms
  if (nAway > 0) {
    r.awayCos = (e.narrow(0, 0, nAway) * l2normalize(away.index_select(0, awayIdx))).sum(1);
    r.away = at::relu(r.awayCos - b.identityMargin).mean();
  }
  if (nKeep > 0) {
    const at::Tensor ref = l2normalize(keep.index_select(0, keepIdx));
    at::Tensor teacher;
    {
      torch::NoGradGuard noGrad;
      teacher = (embedX0(x0Of(keepIdx, b.targets.to(dev, at::kFloat))) * ref).sum(1);
    }
    r.keepCos = (e.narrow(0, nAway, nKeep) * ref).sum(1);
    r.keep = at::relu(teacher - r.keepCos).mean();
  }
  return r;
}

// The loss of one batch (training: augmented, in training mode; evaluation: as given).
LossTerms computeLoss(TrainerState& st, const TrainBatch& b, double margin, bool training) {
  const c10::Device dev = st.options.device;
  // Batch tensors may be inference tensors made by earlier jobs: copies are ordinary tensors.
  at::Tensor x = b.images.to(dev, at::kFloat).clone();
  LossTerms out;
  if (st.target == TrainTarget::Diffusion && b.labels.defined()) {
    // Distillation: the UNet's ε at given (x_t, t) regressed on given targets (a frozen teacher's ε,
    // e.g. under an edited h: the unlearning of ts/unlearn). No augmentation: x_t is a trajectory state.
    at::Tensor t = b.labels.to(dev, at::kLong);
    const int64_t lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
    if (lo < 0 || hi >= st.alphaBar.size(0)) invalidArgument("batch.labels (timesteps) must be in [0, 1000), got values in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    if (st.options.channelsLast) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor pred = st.unet->forward(x, t.to(at::kFloat));
    out.loss = at::mse_loss(pred.to(at::kFloat), b.targets.to(dev, at::kFloat).clone());  // a copy: targets may be inference tensors
    out.parts.emplace_back("mse", out.loss.detach());
    if (b.identityEncoder) {
      const IdentityTerms id = identityTerms(st, b, x, t, pred);
      if (id.away.defined()) {
        out.loss = out.loss + id.away * b.identityWeight;
        out.parts.emplace_back("identity", id.away.detach());
        out.parts.emplace_back("identitySimilarity", id.awayCos.detach().mean());
      }
      if (id.keep.defined()) {
        out.loss = out.loss + id.keep * b.identityKeepWeight;
        out.parts.emplace_back("identityKeep", id.keep.detach());
        out.parts.emplace_back("identityKeepSimilarity", id.keepCos.detach().mean());
      }
    }
    return out;
  }
  if (st.target == TrainTarget::Diffusion) {
    if (training && st.options.flip) x = flipBatch(x);
    if (st.options.channelsLast) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t n = x.size(0);
    at::Tensor t = at::randint(0, 1000, {n}, at::TensorOptions().dtype(at::kLong).device(dev));
    at::Tensor eps = at::randn_like(x);
    at::Tensor ab = st.alphaBar.index_select(0, t).to(at::kFloat).view({n, 1, 1, 1});
    at::Tensor xt = ab.sqrt() * x + (1 - ab).sqrt() * eps;
    at::Tensor pred = st.unet->forward(xt, t.to(at::kFloat));
    out.loss = at::mse_loss(pred.to(at::kFloat), eps);
    out.parts.emplace_back("mse", out.loss.detach());
    return out;
  }
  if (training) {
    torch::NoGradGuard noGrad;
    if (st.options.flip) x = flipBatch(x);
    if (st.options.blur > 0) x = blurBatch(x, st.options.blur, st.options.blurProb);
    if (st.options.noise > 0) x = x + at::randn_like(x) * (at::rand({x.size(0)}, x.options()) * st.options.noise).view({-1, 1, 1, 1});
  }
  if (st.target == TrainTarget::Attributes) {
    if (st.options.channelsLast) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor y = b.targets.to(dev, at::kFloat).clone();
    out.loss = at::mse_loss(st.attributes->forward(x).to(at::kFloat), y);
    out.parts.emplace_back("mse", out.loss.detach());
    return out;
  }
  // Encoder: the 'resize' protocol (any size → 112²), raw embedding, then the heads.
  at::Tensor in = preprocess(x, Protocol::Resize);
  if (st.options.channelsLast) in = in.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor e = st.encoder->forward(in).to(at::kFloat);
  at::Tensor loss = at::zeros({}, e.options());
  if (st.options.classes > 0) {
    at::Tensor labels = b.labels.to(dev, at::kLong).clone();
    const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
    if (lo < 0 || hi >= st.options.classes) {
      invalidArgument("batch.labels must be in [0, " + std::to_string(st.options.classes) + "), got values in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    auto [logits, cos] = arcfaceWithCos(e, st.arcWeight, labels, margin, st.options.scale);
    at::Tensor id = at::cross_entropy_loss(logits, labels);
    loss = loss + id;
    out.parts.emplace_back("arcface", id.detach());
    out.parts.emplace_back("accuracy", (cos.detach().argmax(1) == labels).to(at::kFloat).mean());
  }
  if (st.options.auxDim > 0) {
    at::Tensor y = b.targets.to(dev, at::kFloat).clone();
    at::Tensor aux = at::mse_loss(st.aux->forward(l2normalize(e)), y);
    loss = loss + st.options.auxWeight * aux;
    out.parts.emplace_back("aux", aux.detach());
  }
  out.loss = loss;
  return out;
}

[[noreturn]] void nonFinite(const TrainBatch& b, int64_t step, const std::string& what) {
  const bool badInput = !at::isfinite(b.images).all().item<bool>() || (b.targets.defined() && !at::isfinite(b.targets).all().item<bool>());
  throw BiaError(ErrorCode::Torch, "non-finite training " + what + " at step " + std::to_string(step) + " (NaN or Inf)" +
                 (badInput ? ": the batch contains NaN or Inf values" : ": lower the learning rate or set gradClip") +
                 "; this step's update was not applied");
}

}  // namespace

StepResult TrainerState::trainStep(const TrainBatch& b, double lr, double margin) {
  const auto start = std::chrono::steady_clock::now();
  c10::InferenceMode notInference(false);
  torch::AutoGradMode grad(true);
  const int64_t k = optimizer->steps();
  torch::manual_seed(stepSeed(options.seed, static_cast<uint64_t>(k)));
  for (const auto& p : optimizer->params()) p.second.mutable_grad().reset();
  LossTerms L;
  {
    TrainMode mode(module(), head.get());
    AdaptersApplied adapters(lora);
    L = computeLoss(*this, b, margin, true);
  }
  const double loss = L.loss.item<double>();
  if (!std::isfinite(loss)) nonFinite(b, k, "loss");
  L.loss.backward();
  std::vector<at::Tensor> norms;
  for (const auto& p : optimizer->params()) if (p.second.grad().defined()) norms.push_back(p.second.grad().norm().to(at::kDouble));
  const double gradNorm = norms.empty() ? 0.0 : at::stack(norms).norm().item<double>();
  if (!std::isfinite(gradNorm)) {
    for (const auto& p : optimizer->params()) p.second.mutable_grad().reset();
    nonFinite(b, k, "gradient");
  }
  if (options.gradClip > 0 && gradNorm > options.gradClip) {
    torch::NoGradGuard noGrad;
    const double f = options.gradClip / (gradNorm + 1e-6);
    for (const auto& p : optimizer->params()) if (p.second.grad().defined()) p.second.mutable_grad().mul_(f);
  }
  AdamWHyper h = options.adam;
  h.lr = lr;
  optimizer->step(h);
  for (const auto& p : optimizer->params()) p.second.mutable_grad().reset();
  updateEma();
  StepResult r;
  r.loss = loss;
  for (const auto& p : L.parts) r.parts.emplace_back(p.first, p.second.item<double>());
  r.parts.emplace_back("gradNorm", gradNorm);
  synchronize(options.device);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.step = optimizer->steps();
  r.images = b.images.size(0);
  return r;
}

StepResult TrainerState::evaluate(const TrainBatch& b, double margin, uint64_t seed) {
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard noGrad;
  torch::manual_seed(splitmix64(seed) >> 1);
  module().eval();
  AdaptersApplied adapters(lora);
  LossTerms L = computeLoss(*this, b, margin, false);
  StepResult r;
  r.loss = L.loss.item<double>();
  for (const auto& p : L.parts) r.parts.emplace_back(p.first, p.second.item<double>());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.step = optimizer->steps();
  r.images = b.images.size(0);
  return r;
}

StateDict TrainerState::gradients(const TrainBatch& b, double margin, uint64_t seed) {
  c10::InferenceMode notInference(false);
  torch::AutoGradMode grad(true);
  torch::manual_seed(splitmix64(seed) >> 1);
  module().eval();
  for (const auto& p : optimizer->params()) p.second.mutable_grad().reset();
  LossTerms L;
  {
    AdaptersApplied adapters(lora);
    L = computeLoss(*this, b, margin, false);
  }
  L.loss.backward();
  StateDict out;
  for (const auto& p : optimizer->params()) {
    at::Tensor g = p.second.grad();
    out.emplace_back(p.first, g.defined() ? g.detach().clone() : at::zeros_like(p.second));
    p.second.mutable_grad().reset();
  }
  synchronize(options.device);
  return out;
}

}  // namespace bia
