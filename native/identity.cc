#include "identity.h"

#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>
#include <set>

#include "arcface.h"
#include "checkpoint.h"
#include "device.h"
#include "errors.h"
#include "module_io.h"

namespace bia {

std::shared_ptr<IdentityNet> makeIdentityNet(const std::string& arch, double width, int64_t embeddingSize) {
  validateArch(arch, width, embeddingSize);
  if (arch == "ir_se50") return std::make_shared<IRSE50>(width, embeddingSize);
  if (arch == "iresnet18") return std::make_shared<IResNet>(18, width, embeddingSize);
  if (arch == "iresnet34") return std::make_shared<IResNet>(34, width, embeddingSize);
  if (arch == "iresnet50") return std::make_shared<IResNet>(50, width, embeddingSize);
  if (arch == "iresnet100") return std::make_shared<IResNet>(100, width, embeddingSize);
  if (arch == "mobilefacenet") return makeMobileFaceNet(width, embeddingSize);
  invalidArgument("arch must be one of ir_se50, iresnet18, iresnet34, iresnet50, iresnet100, mobilefacenet; got '" + arch + "'");
}

at::Tensor l2normalize(const at::Tensor& e) { return e / e.norm(2, {1}, true).clamp_min(1e-12); }

void validateArch(const std::string& arch, double width, int64_t embeddingSize) {
  static const std::set<std::string> known{"ir_se50", "iresnet18", "iresnet34", "iresnet50", "iresnet100", "mobilefacenet"};
  if (!known.count(arch)) invalidArgument("arch must be one of ir_se50, iresnet18, iresnet34, iresnet50, iresnet100, mobilefacenet; got '" + arch + "'");
  if (!(width > 0 && width <= 4)) invalidArgument("width must be in (0, 4]");
  if (embeddingSize < 1 || embeddingSize > 65536) invalidArgument("embeddingSize must be in [1, 65536]");
}

Protocol parseProtocol(const std::string& name) {
  if (name == "bia") return Protocol::Bia;
  if (name == "insightface") return Protocol::Insightface;
  if (name == "resize") return Protocol::Resize;
  invalidArgument("protocol must be 'bia', 'insightface' or 'resize'; got '" + name + "'");
}

void checkProtocolInput(at::IntArrayRef sizes, Protocol p) {
  if (sizes.size() != 4 || sizes[1] != 3 || sizes[0] < 1) invalidArgument("images must be [B, 3, H, W], got " + c10::str(sizes));
  const int64_t h = sizes[2], w = sizes[3];
  if (p == Protocol::Bia && (h != 256 || w != 256)) {
    invalidArgument("the 'bia' protocol takes 256x256 images (it crops rows 35:223, cols 32:220); got " + std::to_string(h) + "x" + std::to_string(w) + ": use 'resize'");
  }
  if (p == Protocol::Insightface && (h != 112 || w != 112)) {
    invalidArgument("the 'insightface' protocol takes 112x112 aligned faces; got " + std::to_string(h) + "x" + std::to_string(w) + ": use 'resize'");
  }
  if (h < 1 || w < 1) invalidArgument("images are empty");
}

at::Tensor preprocess(const at::Tensor& x, Protocol p) {
  checkProtocolInput(x.sizes(), p);
  const int64_t h = x.size(2), w = x.size(3);
  switch (p) {
    case Protocol::Bia:
      return at::adaptive_avg_pool2d(x.narrow(2, 35, 188).narrow(3, 32, 188), {112, 112});
    case Protocol::Insightface:
      return x;
    case Protocol::Resize:
      if (h == 112 && w == 112) return x;
      if (h >= 112 && w >= 112) return at::adaptive_avg_pool2d(x, {112, 112});
      return at::upsample_bilinear2d(x, {112, 112}, /*align_corners=*/false);
  }
  return x;
}

at::Tensor embed(IdentityNet& net, const at::Tensor& x, Protocol p, bool normalize) {
  at::Tensor e = net.forward(preprocess(x, p)).to(at::kFloat);
  return normalize ? l2normalize(e) : e;
}

namespace {

struct Inferred {
  std::string arch;
  double width;
  int64_t embeddingSize;
};

const at::Tensor* find(const StateDict& sd, const std::string& key) {
  for (const auto& e : sd) if (e.first == key) return &e.second;
  return nullptr;
}

// Architecture, width and embedding size from the official key names and shapes.
Inferred inferArch(const StateDict& sd, const std::string& path) {
  if (const at::Tensor* w = find(sd, "input_layer.0.weight")) {
    const at::Tensor* lin = find(sd, "output_layer.3.weight");
    if (lin) return {"ir_se50", static_cast<double>(w->size(0)) / 64.0, lin->size(0)};
  }
  if (find(sd, "layer1.0.bn1.weight") && find(sd, "conv1.weight") && find(sd, "fc.weight")) {
    std::vector<std::set<int64_t>> blocks(4);
    for (const auto& e : sd) {
      for (int L = 0; L < 4; L++) {
        const std::string prefix = "layer" + std::to_string(L + 1) + ".";
        if (e.first.rfind(prefix, 0) == 0) blocks[L].insert(std::stoll(e.first.substr(prefix.size())));
      }
    }
    const std::vector<size_t> n{blocks[0].size(), blocks[1].size(), blocks[2].size(), blocks[3].size()};
    std::string arch;
    if (n == std::vector<size_t>{2, 2, 2, 2}) arch = "iresnet18";
    else if (n == std::vector<size_t>{3, 4, 6, 3}) arch = "iresnet34";
    else if (n == std::vector<size_t>{3, 4, 14, 3}) arch = "iresnet50";
    else if (n == std::vector<size_t>{3, 13, 30, 3}) arch = "iresnet100";
    if (!arch.empty()) return {arch, static_cast<double>(find(sd, "conv1.weight")->size(0)) / 64.0, find(sd, "fc.weight")->size(0)};
  }
  if (const at::Tensor* w = find(sd, "conv1.conv.weight")) {
    if (const at::Tensor* lin = find(sd, "linear.weight")) return {"mobilefacenet", static_cast<double>(w->size(0)) / 64.0, lin->size(0)};
  }
  std::string sample;
  for (size_t i = 0; i < sd.size() && i < 3; i++) sample += (i ? ", " : "") + sd[i].first;
  throw BiaError(ErrorCode::CheckpointMismatch, path + " is not an identity encoder checkpoint of a known architecture "
                 "(ir_se50, iresnet18/34/50/100, mobilefacenet); its first keys are: " + sample);
}

std::shared_ptr<EncoderState> finish(std::shared_ptr<IdentityNet> net, const std::string& arch, double width, c10::Device device, c10::ScalarType dtype) {
  auto st = std::make_shared<EncoderState>();
  net->module().eval();
  // Unlike Python's, LibTorch's Module::to(dtype) also converts integer buffers
  // (num_batches_tracked): move to the device, then cast only floating-point tensors.
  net->module().to(device);
  torch::NoGradGuard noGrad;
  for (auto& p : net->module().parameters(true)) if (p.is_floating_point()) p.set_data(p.to(dtype));
  for (auto& b : net->module().buffers(true)) if (b.is_floating_point()) b.set_data(b.to(dtype));
  st->net = std::move(net);
  st->arch = arch;
  st->width = width;
  st->device = device;
  st->dtype = dtype;
  synchronize(device);
  return st;
}

// A converted model may expect another pixel normalisation than (x/255 − 0.5)/0.5 (= our [-1, 1]
// images): the converter records it as metadata input.normalise "(x - A) / B" on 8-bit pixels x.
// Then images x' = x/127.5 − 1 are mapped to (127.5(x' + 1) − A)/B before the network.
void applyInputMetadata(EncoderState& st, const std::map<std::string, std::string>& metadata) {
  auto it = metadata.find("input");
  if (it == metadata.end()) return;
  std::string norm;
  try {
    auto j = nlohmann::json::parse(it->second);
    if (j.contains("normalise") && j["normalise"].is_string()) norm = j["normalise"].get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return;  // free-form metadata: keep the default protocol
  }
  double a = 0, b = 0;
  char tail = 0;
  if (norm.empty() || std::sscanf(norm.c_str(), "(x - %lf) / %lf%c", &a, &b, &tail) != 2 || b == 0) return;
  st.inputScale = 127.5 / b;
  st.inputShift = (127.5 - a) / b;
  st.inputNormalisation = norm;
}

}  // namespace

std::shared_ptr<EncoderState> createEncoder(const std::string& arch, double width, int64_t embeddingSize, uint64_t seed,
                                            c10::Device device, c10::ScalarType dtype) {
  torch::manual_seed(seed);
  return finish(makeIdentityNet(arch, width, embeddingSize), arch, width, device, dtype);
}

std::shared_ptr<EncoderState> loadEncoder(const std::string& path, const std::string& arch, c10::Device device,
                                          c10::ScalarType dtype, bool strict, JobContext& ctx) {
  Checkpoint ck = readForLoading(path, ctx);
  Inferred inf = inferArch(ck.tensors, path);
  if (!arch.empty() && arch != inf.arch) {
    throw BiaError(ErrorCode::CheckpointMismatch, path + " holds a " + inf.arch + " checkpoint, not " + arch);
  }
  auto net = makeIdentityNet(inf.arch, inf.width, inf.embeddingSize);
  try {
    loadStateDictInto(net->module(), ck.tensors, strict);
  } catch (const BiaError& e) {
    if (e.code() != ErrorCode::CheckpointMismatch) throw;
    throw BiaError(ErrorCode::CheckpointMismatch, path + " (" + inf.arch + "): " + e.what());
  }
  releaseCheckpoint(ck);
  auto st = finish(net, inf.arch, inf.width, device, dtype);
  applyInputMetadata(*st, ck.metadata);
  return st;
}

at::Tensor encoderInput(const EncoderState& st, const at::Tensor& x) {
  at::Tensor xx = x.to(st.device, st.dtype);
  return st.inputScale != 1.0 || st.inputShift != 0.0 ? xx * st.inputScale + st.inputShift : xx;
}

at::Tensor encoderEmbed(const EncoderState& st, const at::Tensor& x, Protocol p, bool normalize) {
  c10::InferenceMode guard;
  if (!at::isfinite(x).all().item<bool>()) invalidArgument("images contain NaN or Inf");
  at::Tensor e = embed(*st.net, encoderInput(st, x), p, normalize).contiguous();
  synchronize(st.device);
  return e;
}

at::Tensor cosineSimilarity(const at::Tensor& a, const at::Tensor& b, bool matrix) {
  c10::InferenceMode guard;
  at::Tensor an = l2normalize(a.to(at::kFloat)), bn = l2normalize(b.to(at::kFloat).to(a.device()));
  at::Tensor s = matrix ? at::mm(an, bn.t()) : (an * bn).sum(1);
  s = s.contiguous();
  synchronize(s.device());
  return s;
}

}  // namespace bia
