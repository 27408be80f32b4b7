// The one checkpoint reader/writer of the project.
//
// Reads torch.save files (the zip format of torch >= 1.6 and the legacy pre-1.6 format) with a safe
// pickle interpreter (native/pickle.h: nothing in a file is ever imported or executed), and
// safetensors files. Writes safetensors. Errors are BiaErrors: BIA_IO_ERROR when a file cannot be
// opened, read or written, BIA_CHECKPOINT_ERROR when it is not a checkpoint, is corrupt, truncated or
// uses something unsupported (the message names the path and what was wrong).
//
// The formats: torch_zip.h, torch_legacy.h (with torch_objects.h, what both pickle) and
// safetensors.h, on checkpoint_io.h and atomic_file.h; the addon's functions are checkpoint_js.h.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bia {

using StateDict = std::vector<std::pair<std::string, at::Tensor>>;  // in file order

// The most dimensions a tensor read from any file may have (the tensor handle's limit too).
constexpr size_t kMaxRank = 16;
enum class CheckpointFormat { TorchZip, TorchLegacy, Safetensors };

struct Checkpoint {
  CheckpointFormat format;
  StateDict tensors;
  // safetensors: the header's __metadata__. torch files: the scalar entries (str, int, float, bool,
  // None; written as Python's str() would) of the dicts wrapped around the state dict, e.g. {"epoch": "3"}.
  std::map<std::string, std::string> metadata;
};

// Reads torch.save files (zip format and legacy pre-1.6 format) and safetensors. For torch files the
// state dict is found and unwrapped: a bare (Ordered)Dict of tensors, or a dict wrapping one under
// 'state_dict', 'model', 'ema', 'params_ema' or 'module' (first that holds tensors), and a common
// 'module.' prefix on every key is stripped. Non-tensor entries are skipped (never an error).
// Tensors are CPU tensors; views of one storage in the file share memory here too.
Checkpoint readCheckpoint(const std::string& path);

// Writes a safetensors file: the tensors in the given order, contiguous, header padded with spaces to
// a multiple of 8 bytes, `metadata` as __metadata__ (omitted when empty). The file appears atomically
// (written to a temporary file in the same folder, then renamed).
void writeSafetensors(const std::string& path, const StateDict& tensors, const std::map<std::string, std::string>& metadata);

const char* formatName(CheckpointFormat f);  // "torch-zip", "torch-legacy", "safetensors"

// The same calls with a progress callback (bytes done, bytes in all), called between storages on the
// calling thread; it may throw to stop the work (the job's abort).
using CheckpointProgress = std::function<void(double done, double total)>;
Checkpoint readCheckpoint(const std::string& path, const CheckpointProgress& progress);
void writeSafetensors(const std::string& path, const StateDict& tensors, const std::map<std::string, std::string>& metadata,
                      const CheckpointProgress& progress);

class JobContext;
// Progress of a read or write reported to a job (stage "read"/"write"), stopping it when aborted.
CheckpointProgress jobProgress(JobContext& ctx, const char* stage);

}  // namespace bia
