// torch.save's objects, as both torch formats (torch_zip, torch_legacy) pickle them: storages named
// by persistent ids, the few functions torch uses to rebuild tensors, and the state dict found in
// (and unwrapped from) what the pickle holds. Nothing else is recognised (see pickle.h).
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "pickle.h"

namespace bia::ckpt {

using pickle::Kind;
using pickle::PickleError;
using pickle::StorageRef;
using pickle::Value;
using pickle::ValueArena;

// How to get the bytes of the storage a persistent id names. `view` is the legacy format's view
// metadata (None otherwise).
using StorageProvider = std::function<StorageRef(const std::string& key, at::ScalarType dtype, int64_t numel, const Value* view)>;

// The torch-specific part of unpickling: storages from persistent ids, and the few functions
// torch.save uses to rebuild tensors. A storage of a type not known here is an error when
// unknownStorageIsError, else its tensors are skipped.
class TorchHooks {
 public:
  TorchHooks(StorageProvider provider, bool unknownStorageIsError);
  const pickle::Hooks& hooks() const { return hooks_; }

 private:
  Value* persistentLoad(ValueArena& arena, Value* pid);
  Value* call(ValueArena& arena, const std::string& name, const std::vector<Value*>& a);

  pickle::Hooks hooks_;
  StorageProvider provider_;
  bool unknownStorageIsError_;
  int depth_ = 0;
};

// Turn the unpickled object into the checkpoint's state dict and metadata.
void unwrapStateDict(const std::string& path, const Value* root, Checkpoint& out);

}  // namespace bia::ckpt
