#include "diffusion.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "autocast.h"
#include "checkpoint.h"
#include "device.h"
#include "errors.h"
#include "module_io.h"

namespace bia {

std::string unetConfigToJson(const UNetConfig& c) {
  nlohmann::json j = {{"inChannels", c.inChannels}, {"outChannels", c.outChannels}, {"ch", c.ch},
                      {"chMult", c.chMult}, {"numResBlocks", c.numResBlocks}, {"attnResolutions", c.attnResolutions},
                      {"dropout", c.dropout}, {"resampWithConv", c.resampWithConv}, {"resolution", c.resolution}};
  return j.dump();
}

UNetConfig unetConfigFromJson(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    UNetConfig c;
    c.inChannels = j.at("inChannels").get<int64_t>();
    c.outChannels = j.at("outChannels").get<int64_t>();
    c.ch = j.at("ch").get<int64_t>();
    c.chMult = j.at("chMult").get<std::vector<int64_t>>();
    c.numResBlocks = j.at("numResBlocks").get<int64_t>();
    c.attnResolutions = j.at("attnResolutions").get<std::vector<int64_t>>();
    c.dropout = j.value("dropout", 0.0);
    c.resampWithConv = j.value("resampWithConv", true);
    c.resolution = j.at("resolution").get<int64_t>();
    c.validate();
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw BiaError(ErrorCode::Checkpoint, std::string("the checkpoint's ") + kUNetConfigKey + " metadata is not a UNet config: " + e.what());
  }
}

namespace {

std::string shapeStr(at::IntArrayRef s) { return c10::str(s); }

at::Tensor output(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

// A copy of a CPU float32 UNet in bfloat16, channels_last, computing in bfloat16 between float32 ends.
UNet bfloat16Copy(UNetImpl& from) {
  torch::NoGradGuard ng;
  UNet to(from.config());  // its own initial weights are replaced below (set_data takes the dtype too)
  to->eval();
  auto src = from.named_parameters(true), dst = to->named_parameters(true);
  for (auto& p : dst) {
    at::Tensor v = src[p.key()].detach().to(at::kBFloat16);
    p.value().set_data(p.value().dim() == 4 ? v.contiguous(at::MemoryFormat::ChannelsLast) : v.contiguous());
  }
  to->setMixed(at::kFloat);
  return to;
}

// Move a built (and possibly loaded) UNet to its device, dtype and memory format.
std::shared_ptr<DiffusionState> finishModel(UNet unet, const DiffusionOptions& m) {
  auto st = std::make_shared<DiffusionState>();
  st->unet = std::move(unet);
  st->unet->eval();
  st->unet->to(m.device, m.dtype);
  if (m.channelsLast) {
    torch::NoGradGuard ng;
    for (auto& p : st->unet->parameters()) if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
  st->device = m.device;
  st->dtype = m.dtype;
  st->channelsLast = m.channelsLast;
  st->autocast = m.autocast;
  if (m.device.is_cpu() && m.autocast) {
    if (*m.autocast != at::kBFloat16) invalidArgument("autocast float16 runs on CUDA only; on the CPU use bfloat16");
    if (m.dtype != at::kFloat) invalidArgument("CPU bfloat16 autocast takes float32 weights");
    st->bf16 = bfloat16Copy(*st->unet);
  }
  synchronize(m.device);
  return st;
}

}  // namespace

void checkImage(const at::Tensor& x, const UNetConfig& c, const char* what) {
  if (x.dim() != 4) invalidArgument(std::string(what) + " must be [B, C, H, W], got " + shapeStr(x.sizes()));
  if (x.size(0) < 1) invalidArgument(std::string(what) + " has an empty batch");
  if (x.size(1) != c.inChannels) {
    invalidArgument(std::string(what) + " has " + std::to_string(x.size(1)) + " channels; the model takes " + std::to_string(c.inChannels));
  }
  const int64_t div = int64_t{1} << (c.levels() - 1);
  if (x.size(2) % div != 0 || x.size(3) % div != 0 || x.size(2) < div) {
    invalidArgument(std::string(what) + " is " + std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)) +
                    "; height and width must be multiples of 2^(levels-1) = " + std::to_string(div));
  }
  if (!x.is_floating_point()) invalidArgument(std::string(what) + " must be a floating-point tensor");
}

void checkFinite(const at::Tensor& x, const char* what) {
  if (!at::isfinite(x).all().item<bool>()) invalidArgument(std::string(what) + " contains NaN or Inf");
}

void checkH(const at::Tensor& h, const UNetConfig& c, int64_t height, int64_t width, const char* what) {
  const int64_t div = int64_t{1} << (c.levels() - 1);
  const std::vector<int64_t> want{c.ch * c.chMult.back(), height / div, width / div};
  if (h.dim() != 4 || h.size(1) != want[0] || h.size(2) != want[1] || h.size(3) != want[2]) {
    invalidArgument(std::string(what) + " must be [B, " + std::to_string(want[0]) + ", " + std::to_string(want[1]) + ", " +
                    std::to_string(want[2]) + "] (h-space of this model and image size), got " + shapeStr(h.sizes()));
  }
}

void DiffusionState::refreshCopies() {
  if (bf16) bf16 = bfloat16Copy(*unet);
}

at::Tensor DiffusionState::prepare(const at::Tensor& x) const {
  at::Tensor r = x.to(device, dtype);
  return channelsLast && r.dim() == 4 ? r.contiguous(at::MemoryFormat::ChannelsLast) : r.contiguous();
}

std::shared_ptr<DiffusionState> createDiffusion(const UNetConfig& config, uint64_t seed, const DiffusionOptions& o) {
  torch::manual_seed(seed);  // LibTorch's default initialisation, seeded
  return finishModel(UNet(config), o);
}

std::shared_ptr<DiffusionState> loadDiffusion(const std::string& path, const std::optional<UNetConfig>& config,
                                              const DiffusionOptions& o, bool strict, JobContext& ctx) {
  Checkpoint ck = readForLoading(path, ctx);
  UNetConfig c = config ? *config : (ck.metadata.count(kUNetConfigKey) ? unetConfigFromJson(ck.metadata.at(kUNetConfigKey)) : unetPreset("celeba-hq-256"));
  UNet unet(c);
  try {
    loadStateDictInto(*unet, ck.tensors, strict);
  } catch (const BiaError& e) {
    if (e.code() != ErrorCode::CheckpointMismatch) throw;
    throw BiaError(ErrorCode::CheckpointMismatch, path + ": " + e.what() +
                   (config ? "" : " (no config was given: pass the model's config, e.g. {config: 'tiny'})"));
  }
  releaseCheckpoint(ck);  // before moving the model
  return finishModel(std::move(unet), o);
}

ForwardResult diffusionForward(const DiffusionState& st, const at::Tensor& x, const std::vector<int64_t>& ts,
                               const at::Tensor& hReplace, const at::Tensor& hDelta) {
  c10::InferenceMode guard;
  AutocastGuard autocast(st.device, st.torchAutocast());
  checkFinite(x, "x");
  at::Tensor xx = st.prepare(x);
  at::Tensor t = ts.size() == 1 ? at::full({xx.size(0)}, static_cast<double>(ts[0]), at::TensorOptions().dtype(at::kFloat).device(st.device))
                                : at::tensor(std::vector<float>(ts.begin(), ts.end())).to(st.device);
  UNet unet = st.inference();
  UNetFeatures f = unet->encode(xx, t);
  at::Tensor h = hReplace.defined() ? st.prepare(hReplace) : f.h;
  if (hDelta.defined()) h = h + st.prepare(hDelta);
  ForwardResult r{output(unet->decode(h, f)), output(f.h)};
  synchronize(st.device);  // finish (and surface CUDA errors) inside the job
  return r;
}

InvertResult diffusionInvert(const DiffusionState& st, const at::Tensor& x, int64_t t0, int64_t steps, bool keepAll,
                             const JobContext& ctx) {
  c10::InferenceMode guard;
  AutocastGuard autocast(st.device, st.torchAutocast());
  checkFinite(x, "x");
  UNet unet = st.inference();
  InvertResult r = ddimInvert(unet, st.prepare(x), t0, steps, keepAll, ctx);
  r.xLat = output(r.xLat);
  r.hR = output(r.hR);
  for (auto& h : r.hs) h = output(h);
  synchronize(st.device);
  return r;
}

at::Tensor diffusionDecode(const DiffusionState& st, const at::Tensor& xLat, const at::Tensor& h, const DecodeOptions& d,
                           int64_t batchSize, const JobContext& ctx) {
  c10::InferenceMode guard;
  AutocastGuard autocast(st.device, st.torchAutocast());
  checkFinite(xLat, "xLat");
  if (h.defined()) checkFinite(h, "h");
  DecodeOptions dd = d;
  const at::Tensor hRef = d.hRef.defined() ? st.prepare(d.hRef) : at::Tensor();
  at::Tensor lat = st.prepare(xLat);
  const int64_t total = h.defined() ? h.size(0) : lat.size(0);
  UNet unet = st.inference();
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < total; start += batchSize) {
    const int64_t n = std::min(batchSize, total - start);
    at::Tensor hb = h.defined() ? st.prepare(h.narrow(0, start, n)) : at::Tensor();
    at::Tensor lb = lat.size(0) == 1 ? lat : lat.narrow(0, start, n);
    if (hRef.defined()) dd.hRef = hRef.size(0) == 1 ? hRef : hRef.narrow(0, start, n);
    dd.firstIndex = start;
    parts.push_back(output(ddimDecode(unet, lb, hb, dd, ctx)));
  }
  at::Tensor x = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
  synchronize(st.device);
  return x;
}

}  // namespace bia
