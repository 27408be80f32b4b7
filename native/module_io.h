// A module's weights across the JS boundary and into files: [name, Tensor] arrays, metadata
// objects, path arguments, and the strict state-dict loader shared by every model handle.
#pragma once
#include <napi.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint.h"

namespace bia {

// Parameters, then buffers, under their dotted names.
StateDict moduleState(const torch::nn::Module& module);
// The same tensors detached, on the CPU and contiguous (for writing).
StateDict forSaving(const StateDict& state);

// [[name, Tensor handle], …] (handles share the tensors' memory).
Napi::Array stateToJs(Napi::Env env, const StateDict& state);
// Parse [[name, Tensor], …]; BIA_INVALID_ARGUMENT otherwise.
StateDict stateFromJs(Napi::Value entries);
// A {string: string} object (undefined → empty).
std::map<std::string, std::string> metadataFromJs(Napi::Value value);
// A non-empty string path.
std::string pathFromJs(Napi::Value value);

// Copy `entries` into the module's parameters and buffers, by name. Strict: every name must match
// in both directions; shapes must always match. Else BIA_CHECKPOINT_MISMATCH naming the first
// offenders (and saying so when nothing matches: a checkpoint of another architecture).
void loadStateDictInto(torch::nn::Module& module, const StateDict& entries, bool strict);

}  // namespace bia
