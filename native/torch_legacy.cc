#include "torch_legacy.h"

#include <c10/core/CPUAllocator.h>

#include <unordered_map>

#include "pickle.h"
#include "torch_objects.h"

namespace bia::ckpt {

namespace {

// pickle(0x1950a86a20f9469cfc6c) starts every legacy file: the int's little-endian bytes.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);

}  // namespace

Checkpoint readTorchLegacy(const std::string& path, const File& file, const CheckpointProgress& progress) {
  pickle::FileSource source(file.get(), file.size());
  ValueArena arena;
  const pickle::Hooks plain;
  const Value* magic = pickle::load(source, arena, plain, "magic number");
  const bool magicOk = magic->kind == Kind::BigInt && magic->str == kLegacyMagic;
  if (!magicOk) corrupt(path, "a pickle file, but not a torch.save checkpoint (invalid magic number)");
  const Value* protocol = pickle::load(source, arena, plain, "protocol version");
  if (!protocol->isInt() || protocol->integer != 1001) corrupt(path, "unsupported legacy protocol version " + protocol->describe());
  // sys_info: byte order and C type sizes of the writer. Storage data is always written
  // little-endian (torch converts on big-endian hosts), so nothing here changes how we read.
  const Value* sysInfo = pickle::load(source, arena, plain, "sys_info");
  if (!sysInfo->isDict()) corrupt(path, "bad sys_info record: " + sysInfo->describe());

  // Storages are allocated when the object pickle names them and filled from the data that follows.
  struct Legacy {
    c10::Storage bytes;
    at::ScalarType dtype;
    int64_t numel;
    bool filled = false;
  };
  std::unordered_map<std::string, Legacy> storages;
  uint64_t reserved = 0;  // bytes the named storages will take at the end of the file
  StorageProvider provider = [&](const std::string& key, at::ScalarType dtype, int64_t numel, const Value* view) {
    auto it = storages.find(key);
    if (it == storages.end()) {
      const uint64_t esize = c10::elementSize(dtype);
      const uint64_t room = source.remaining() > reserved ? source.remaining() - reserved : 0;
      if (static_cast<uint64_t>(numel) > room / esize) {
        throw PickleError("storage '" + key + "' of " + std::to_string(numel) + " elements does not fit in the rest of the file (" +
                          std::to_string(room) + " bytes; the file is truncated or corrupt)");
      }
      const uint64_t nbytes = static_cast<uint64_t>(numel) * esize;
      reserved += nbytes + 8;
      c10::Storage s(c10::Storage::use_byte_size_t(), nbytes, c10::GetCPUAllocator()->allocate(nbytes), nullptr, false);
      it = storages.emplace(key, Legacy{std::move(s), dtype, numel}).first;
    } else if (it->second.numel != numel || it->second.dtype != dtype) {
      throw PickleError("storage '" + key + "' is named with two different types or sizes");
    }
    StorageRef ref{it->second.bytes, dtype, 0, numel, key};
    if (view && view->kind != Kind::None) {  // (view_key, offset, size): a slice of the root storage
      if (view->kind != Kind::Tuple || view->items.size() != 3 || !view->items[1]->isInt() || !view->items[2]->isInt()) {
        throw PickleError("bad storage view " + view->describe());
      }
      const int64_t offset = view->items[1]->integer, size = view->items[2]->integer;
      if (offset < 0 || size < 0 || offset > numel || size > numel - offset) throw PickleError("storage view outside storage '" + key + "'");
      ref.elementOffset = offset;
      ref.numel = size;
    }
    return ref;
  };
  TorchHooks hooks(provider, /*unknownStorageIsError=*/true);
  const Value* root = pickle::load(source, arena, hooks.hooks(), "object pickle");
  const Value* keys = pickle::load(source, arena, plain, "storage key list");
  if (keys->kind != Kind::List) corrupt(path, "bad storage key list: " + keys->describe());

  Throttle throttle(progress, static_cast<double>(source.remaining()));
  for (const Value* k : keys->items) {
    if (!k->isStr()) corrupt(path, "bad storage key " + k->describe());
    auto it = storages.find(k->str);
    if (it == storages.end()) corrupt(path, "storage '" + k->str + "' has data but is not used by the pickle");
    Legacy& s = it->second;
    if (s.filled) corrupt(path, "storage '" + k->str + "' has data twice");
    uint8_t count[8];
    source.read(count, 8);
    const int64_t n = static_cast<int64_t>(rd64(count));
    if (n != s.numel) corrupt(path, "storage '" + k->str + "' has " + std::to_string(n) + " elements, the pickle says " + std::to_string(s.numel));
    source.read(s.bytes.data_ptr().get(), s.bytes.nbytes());
    s.filled = true;
    throttle.add(static_cast<double>(s.bytes.nbytes() + 8));
  }
  for (const auto& [key, s] : storages) {
    if (!s.filled) corrupt(path, "storage '" + key + "' is used but its data is missing");
  }
  Checkpoint out{CheckpointFormat::TorchLegacy, {}, {}};
  unwrapStateDict(path, root, out);
  throttle.finish();
  return out;
}

}  // namespace bia::ckpt
