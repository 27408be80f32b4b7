#include "torch_zip.h"

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "pickle.h"
#include "torch_objects.h"

namespace bia::ckpt {

namespace {

std::string cleanTorchMessage(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  auto pos = msg.find("Exception raised from ");
  if (pos != std::string::npos) msg.erase(pos);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

// Big-endian zip archives (torch >= 2.1 records the writer's byte order): swap each element.
void swapBytes(c10::Storage& storage, at::ScalarType dtype) {
  size_t width = c10::elementSize(dtype);
  if (c10::isComplexType(dtype)) width /= 2;  // real and imaginary parts separately
  if (width <= 1) return;
  auto* p = static_cast<uint8_t*>(storage.data_ptr().get());
  const size_t n = storage.nbytes() / width;
  for (size_t i = 0; i < n; i++) std::reverse(p + i * width, p + (i + 1) * width);
}

// data.pkl holds the state dict's structure, about 100 bytes per tensor: 64 MiB is room for over half a
// million tensors. A larger one is refused before it is read (its unpacking budget grows with its size).
constexpr uint64_t kMaxPickleBytes = uint64_t{64} << 20;
// torch.save stores records uncompressed; a re-zipped checkpoint deflates weights by a few percent. A
// record claiming to inflate more than this many times its stored size is refused before inflating.
constexpr uint64_t kMaxDeflateRatio = 32;

struct ZipRecord {
  uint16_t method = 0;       // 0 stored, 8 deflated
  uint64_t compressed = 0;
  uint64_t size = 0;
};

// The records of a zip archive, by their name inside the archive's folder ("data.pkl", "data/0"),
// from the central directory. PyTorchStreamReader reads them; this scan is there to know each
// record's size before it allocates memory for it, and to give clear errors for broken archives.
std::unordered_map<std::string, ZipRecord> scanZip(const File& f, const std::string& path) {
  const uint64_t size = f.size();
  if (size < 22) corrupt(path, "truncated zip archive (" + std::to_string(size) + " bytes)");
  const uint64_t tailLen = std::min<uint64_t>(size, 22 + 65535);
  std::vector<uint8_t> tail(tailLen);
  f.readAt(size - tailLen, tail.data(), tailLen);
  int64_t at = -1;
  for (int64_t i = static_cast<int64_t>(tailLen) - 22; i >= 0; i--) {
    if (rd32(&tail[static_cast<size_t>(i)]) == 0x06054b50) {
      at = i;
      break;
    }
  }
  if (at < 0) corrupt(path, "corrupt zip archive: no end-of-central-directory record (the file is truncated)");
  const uint8_t* eocd = &tail[static_cast<size_t>(at)];
  const uint64_t eocdPos = size - tailLen + static_cast<uint64_t>(at);
  uint64_t entries = rd16(eocd + 10), cdSize = rd32(eocd + 12), cdOffset = rd32(eocd + 16);
  if (entries == 0xFFFF || cdSize == 0xFFFFFFFF || cdOffset == 0xFFFFFFFF) {
    // zip64 (archives over 4 GiB): a locator just before the record points at the zip64 record.
    uint8_t loc[20];
    if (eocdPos < 20) corrupt(path, "corrupt zip64 archive: no locator");
    f.readAt(eocdPos - 20, loc, 20);
    if (rd32(loc) != 0x07064b50) corrupt(path, "corrupt zip64 archive: no locator");
    const uint64_t recPos = rd64(loc + 8);
    uint8_t rec[56];
    if (recPos > size || size - recPos < 56) corrupt(path, "corrupt zip64 archive: the zip64 record lies outside the file");
    f.readAt(recPos, rec, 56);
    if (rd32(rec) != 0x06064b50) corrupt(path, "corrupt zip64 archive: bad zip64 record");
    entries = rd64(rec + 32);
    cdSize = rd64(rec + 40);
    cdOffset = rd64(rec + 48);
  }
  if (cdOffset > size || cdSize > size - cdOffset) corrupt(path, "corrupt zip archive: the central directory lies outside the file");
  if (entries == 0) corrupt(path, "the zip archive is empty (not a torch.save file)");
  if (entries > cdSize / 46) corrupt(path, "corrupt zip archive: " + std::to_string(entries) + " entries cannot fit in its central directory");
  std::vector<uint8_t> cd(static_cast<size_t>(cdSize));
  f.readAt(cdOffset, cd.data(), cd.size());
  std::unordered_map<std::string, ZipRecord> out;
  std::string folder;  // the archive's folder: that of the first record, as PyTorchStreamReader does
  size_t p = 0;
  for (uint64_t i = 0; i < entries; i++) {
    if (p + 46 > cd.size() || rd32(&cd[p]) != 0x02014b50) corrupt(path, "corrupt zip archive: bad central directory entry");
    const uint8_t* h = &cd[p];
    ZipRecord r;
    r.method = rd16(h + 10);
    r.compressed = rd32(h + 20);
    r.size = rd32(h + 24);
    const size_t nameLen = rd16(h + 28), extraLen = rd16(h + 30), commentLen = rd16(h + 32);
    if (p + 46 + nameLen + extraLen + commentLen > cd.size()) corrupt(path, "corrupt zip archive: bad central directory entry");
    std::string name(reinterpret_cast<const char*>(h + 46), nameLen);
    // zip64 sizes sit in extra field 0x0001 when the 32-bit fields are saturated.
    const uint8_t* x = h + 46 + nameLen;
    size_t left = extraLen;
    while (left >= 4) {
      const uint16_t id = rd16(x), len = rd16(x + 2);
      if (static_cast<size_t>(len) + 4 > left) break;
      if (id == 0x0001) {
        const uint8_t* d = x + 4;
        size_t dl = len;
        if (r.size == 0xFFFFFFFF && dl >= 8) r.size = rd64(d), d += 8, dl -= 8;
        if (r.compressed == 0xFFFFFFFF && dl >= 8) r.compressed = rd64(d);
      }
      x += 4 + len;
      left -= 4 + len;
    }
    p += 46 + nameLen + extraLen + commentLen;
    const size_t slash = name.find('/');
    if (i == 0) {
      if (slash == std::string::npos) corrupt(path, "a zip archive, but not a torch.save file (its first record '" + name + "' is not in a folder)");
      folder = name.substr(0, slash + 1);
    }
    if (name.compare(0, folder.size(), folder) == 0) out[name.substr(folder.size())] = r;
  }
  return out;
}

}  // namespace

Checkpoint readTorchZip(const std::string& path, const File& file, const CheckpointProgress& progress) {
  const auto records = scanZip(file, path);
  if (records.find("data.pkl") == records.end()) {
    corrupt(path, records.count("constants.pkl") ? "a TorchScript archive (torch.jit.save), not a torch.save file"
                                                  : "a zip archive without data.pkl (not a torch.save file)");
  }
  double storageBytes = 0;
  for (const auto& [name, r] : records) {
    if (name.compare(0, 5, "data/") == 0) storageBytes += static_cast<double>(r.size);
  }
  Throttle throttle(progress, storageBytes);
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    auto getRecord = [&](const std::string& name, uint64_t needed) -> std::pair<at::DataPtr, size_t> {
      auto it = records.find(name);
      if (it == records.end() || !reader.hasRecord(name)) corrupt(path, "the zip archive has no record '" + name + "'");
      const ZipRecord& r = it->second;
      // Stored records (torch.save never compresses) cannot claim more bytes than the file has (miniz
      // checks); a deflated one may not inflate beyond kMaxDeflateRatio (a zip bomb is refused unread).
      if (r.compressed > file.size()) {
        corrupt(path, "zip record '" + name + "' claims " + std::to_string(r.compressed) + " stored bytes, more than the file's " + std::to_string(file.size()));
      }
      if (r.method != 0 && r.size > kMaxDeflateRatio * std::max<uint64_t>(r.compressed, 1)) {
        corrupt(path, "zip record '" + name + "' would inflate " + std::to_string(r.compressed) + " stored bytes to " + std::to_string(r.size) +
                          " (more than " + std::to_string(kMaxDeflateRatio) + ":1; torch.save does not compress, so this looks like a zip bomb)");
      }
      if (name == "data.pkl" && r.size > kMaxPickleBytes) {
        corrupt(path, "data.pkl declares " + std::to_string(r.size) + " bytes, more than the " + std::to_string(kMaxPickleBytes >> 20) +
                          " MiB a state dict's pickle may take");
      }
      if (r.size < needed) {
        corrupt(path, "zip record '" + name + "' has " + std::to_string(r.size) + " bytes, but the checkpoint needs " + std::to_string(needed));
      }
      auto rec = reader.getRecord(name);
      return {std::move(std::get<0>(rec)), std::get<1>(rec)};
    };

    bool bigEndian = false;
    if (records.count("byteorder")) {
      auto [ptr, n] = getRecord("byteorder", 0);
      const std::string order(static_cast<const char*>(ptr.get()), n);
      if (order != "little" && order != "big") corrupt(path, "unknown byte order '" + order.substr(0, 16) + "'");
      bigEndian = order == "big";
    }

    // Each storage record is read once, on first use, and shared by every tensor that views it.
    std::unordered_map<std::string, c10::Storage> storages;
    StorageProvider provider = [&](const std::string& key, at::ScalarType dtype, int64_t numel, const Value*) {
      const uint64_t needed = static_cast<uint64_t>(numel) * c10::elementSize(dtype);
      if (static_cast<uint64_t>(numel) > file.size()) {
        throw PickleError("storage '" + key + "' claims " + std::to_string(numel) + " elements, more than the file holds");
      }
      auto it = storages.find(key);
      if (it == storages.end()) {
        auto [ptr, n] = getRecord("data/" + key, needed);
        c10::Storage s(c10::Storage::use_byte_size_t(), n, std::move(ptr), nullptr, false);
        if (bigEndian) swapBytes(s, dtype);
        it = storages.emplace(key, std::move(s)).first;
        throttle.add(static_cast<double>(n));
      } else if (it->second.nbytes() < needed) {
        throw PickleError("storage '" + key + "' is used with " + std::to_string(needed) + " bytes but has " + std::to_string(it->second.nbytes()));
      }
      return StorageRef{it->second, dtype, 0, numel, key};
    };

    auto [pklPtr, pklSize] = getRecord("data.pkl", 0);
    pickle::MemorySource source(pklPtr.get(), pklSize);
    ValueArena arena;
    TorchHooks hooks(provider, /*unknownStorageIsError=*/false);
    const Value* root = pickle::load(source, arena, hooks.hooks(), "data.pkl");
    Checkpoint out{CheckpointFormat::TorchZip, {}, {}};
    unwrapStateDict(path, root, out);
    throttle.finish();
    return out;
  } catch (const c10::Error& e) {
    // PyTorchStreamReader's own checks (miniz errors, CRC mismatches, a missing version record).
    corrupt(path, "corrupt zip archive: " + cleanTorchMessage(e));
  }
}

}  // namespace bia::ckpt
