// Low-rank adapters (LoRA) on a network's convolutions and linear layers, and the adapter file
// ("a patch") that carries them apart from the base weights.
//
// An adapter on a weight W [out, in, (kh, kw)] is a pair down [r, in·kh·kw] and up [out, r]; the layer
// computes with W + (alpha / r) · (up · down) reshaped to W's shape. down starts small and random, up at
// zero, so a new adapter changes nothing. While training, the layer's weight member is replaced by that
// sum (the registered parameter keeps W, frozen); merging writes the sum into a copy of the weights.
//
// The patch file is safetensors: "<layer>.lora_down.weight" and "<layer>.lora_up.weight" for each adapted
// layer ("<layer>" is the weight's name without ".weight", e.g. "up.0.block.1.conv2"), with the metadata
// kLoraKey = {"rank": r, "alpha": a, "version": 1} (and whatever the writer adds, e.g. the UNet config).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "job_context.h"

namespace bia {

inline constexpr const char* kLoraKey = "bia.lora";

struct LoraAdapter {
  std::string layer;                          // the weight's name without ".weight"
  std::shared_ptr<torch::nn::Module> module;  // the Conv2d / Linear that owns the weight
  at::Tensor base;                            // the frozen weight (the registered parameter)
  at::Tensor down, up;                        // trainable: [r, fanIn], [out, r]
};

struct LoraSet {
  int64_t rank = 0;
  double alpha = 0;
  std::vector<LoraAdapter> adapters;
  double scale() const { return alpha / static_cast<double>(rank); }
  bool empty() const { return adapters.empty(); }
  // The trainable tensors under their patch names.
  StateDict tensors() const;
  // Point each layer's weight member at base + scale·up·down (autograd flows into down and up).
  void apply() const;
  // Point each layer's weight member back at its base weight.
  void restore() const;
  // A copy of `weights` (the network's state, official names) with every adapted weight merged.
  StateDict merged(const StateDict& weights) const;
};

// Adapters of rank r on every Conv2d / Linear weight of `m` whose name starts with one of `prefixes`
// (all of them when empty). BIA_INVALID_ARGUMENT when none is selected or r is out of range.
LoraSet makeLora(torch::nn::Module& m, const std::vector<std::string>& prefixes, int64_t rank, double alpha);

// Write the adapters as a patch file (atomically), with `metadata` added to kLoraKey.
void writeLoraPatch(const std::string& path, const LoraSet& lora, std::map<std::string, std::string> metadata, JobContext& ctx);

// `weights` (official names, e.g. a model's state) with the patch at `path` merged in. Refuses, with
// BIA_CHECKPOINT_MISMATCH, a patch whose layers are not in `weights` or whose shapes do not fit, and,
// with BIA_CHECKPOINT_ERROR, a file that is not a patch.
StateDict mergeLoraPatch(const StateDict& weights, const std::string& path, JobContext& ctx);

}  // namespace bia
