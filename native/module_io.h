// A module's weights in and out: state dicts of modules, checkpoints read for loading, and the
// strict state-dict loader shared by every model. (Their JS side is model_js.h.)
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "checkpoint.h"

namespace bia {

// Parameters, then buffers, under their dotted names.
StateDict moduleState(const torch::nn::Module& module);
// The same tensors detached, on the CPU and contiguous (for writing).
StateDict forSaving(const StateDict& state);

// A named child that is a plain container (e.g. "temb", "down.3", "body"), as the official
// PyTorch code's nn.Sequential / ModuleList / attribute modules are.
std::shared_ptr<torch::nn::Module> container(torch::nn::Module& parent, const std::string& name);

class JobContext;
// Read a checkpoint inside a job (progress "read", abortable) for loading into a model. After its
// tensors are copied, releaseCheckpoint frees them and gives their blocks back to the system: their
// sizes are unlikely to be asked for again, so keeping them in the CPU cache would only hold memory.
Checkpoint readForLoading(const std::string& path, JobContext& ctx);
void releaseCheckpoint(Checkpoint& ck);

// Copy `entries` into the module's parameters and buffers, by name. Strict: every name must match
// in both directions; shapes must always match. Else BIA_CHECKPOINT_MISMATCH naming the first
// offenders (and saying so when nothing matches: a checkpoint of another architecture). Floating-point
// weights must be finite (else BIA_CHECKPOINT_ERROR naming the first tensor that is not).
void loadStateDictInto(torch::nn::Module& module, const StateDict& entries, bool strict);

}  // namespace bia
