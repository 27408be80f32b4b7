#include "checkpoint.h"

#include <c10/core/CPUAllocator.h>
#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "errors.h"
#include "job.h"
#include "pickle.h"
#include "tensor.h"

// Storages, safetensors data and the legacy format's element counts are little-endian, and so are
// the hosts LibTorch runs on (x86-64, aarch64); this file copies those bytes as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoint.cc assumes a little-endian host");

namespace bia {

const char* formatName(CheckpointFormat f) {
  switch (f) {
    case CheckpointFormat::TorchZip: return "torch-zip";
    case CheckpointFormat::TorchLegacy: return "torch-legacy";
    case CheckpointFormat::Safetensors: return "safetensors";
  }
  return "unknown";
}

namespace {

using pickle::Kind;
using pickle::PickleError;
using pickle::StorageRef;
using pickle::Value;
using pickle::ValueArena;

// ---- errors, files, little helpers --------------------------------------------------------------

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw BiaError(ErrorCode::Checkpoint, "cannot read checkpoint '" + path + "': " + what);
}

[[noreturn]] void ioError(const std::string& action, const std::string& path, int err) {
  throw BiaError(ErrorCode::Io, "cannot " + action + " '" + path + "': " + std::strerror(err));
}

std::string cleanTorchMessage(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  auto pos = msg.find("Exception raised from ");
  if (pos != std::string::npos) msg.erase(pos);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
uint64_t rd64(const uint8_t* p) { return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A regular file opened for reading; closed on scope exit.
class File {
 public:
  explicit File(const std::string& path) : path_(path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) ioError("open", path, errno);
    if (S_ISDIR(st.st_mode)) throw BiaError(ErrorCode::Io, "cannot open '" + path + "': it is a directory");
    // Not a FIFO or a device: opening one could block forever.
    if (!S_ISREG(st.st_mode)) throw BiaError(ErrorCode::Io, "cannot open '" + path + "': not a regular file");
    fp_ = std::fopen(path.c_str(), "rb");
    if (!fp_) ioError("open", path, errno);
    struct stat opened;
    if (::fstat(fileno(fp_), &opened) != 0) ioError("read", path, errno);
    size_ = static_cast<uint64_t>(opened.st_size);
  }
  ~File() {
    if (fp_) std::fclose(fp_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  std::FILE* get() const { return fp_; }
  uint64_t size() const { return size_; }

  // Exactly n bytes at `offset`; the caller has checked that they lie inside the file.
  void readAt(uint64_t offset, void* dst, size_t n) const {
    if (n == 0) return;
    if (offset > size_ || n > size_ - offset) corrupt(path_, "truncated: needed bytes " + std::to_string(offset) + ".." + std::to_string(offset + n) + " of a " + std::to_string(size_) + "-byte file");
    if (::fseeko(fp_, static_cast<off_t>(offset), SEEK_SET) != 0) ioError("read", path_, errno);
    if (std::fread(dst, 1, n, fp_) != n) {
      if (std::ferror(fp_)) ioError("read", path_, errno);
      corrupt(path_, "the file ended early (it changed while being read?)");
    }
  }

 private:
  std::string path_;
  std::FILE* fp_ = nullptr;
  uint64_t size_ = 0;
};

// What a file that is not a checkpoint looks like, for the error message.
std::string describeContent(const uint8_t* head, size_t n) {
  auto starts = [&](const char* magic, size_t len, size_t at = 0) { return n >= at + len && std::memcmp(head + at, magic, len) == 0; };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return "a PNG image";
  if (starts("\xff\xd8\xff", 3)) return "a JPEG image";
  if (starts("GIF8", 4)) return "a GIF image";
  if (starts("\x1f\x8b", 2)) return "gzip-compressed data";
  if (starts("\x7f" "ELF", 4)) return "an ELF binary";
  if (starts("ustar", 5, 257)) return "a tar archive (the tar-based format of the earliest torch.save versions is not supported)";
  if (starts("\x93NUMPY", 6)) return "a NumPy .npy array";
  bool text = n > 0;
  for (size_t i = 0; i < std::min<size_t>(n, 64); i++) {
    const uint8_t c = head[i];
    if (!(c == '\n' || c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7f) || c >= 0x80)) text = false;
  }
  if (text) return "text";
  std::string hex;
  for (size_t i = 0; i < std::min<size_t>(n, 8); i++) {
    char b[4];
    std::snprintf(b, sizeof(b), "%02x", head[i]);
    hex += (i ? " " : "") + std::string(b);
  }
  return "data starting with bytes " + hex;
}

// Python's str() of a float (repr: shortest round trip; exponent outside [-4, 16)).
std::string pythonFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // e.g. "-1.2345e-05"
  const size_t e = sci.find('e');
  const int exp = std::stoi(sci.substr(e + 1));
  std::string sign = sci[0] == '-' ? "-" : "";
  std::string digits;
  for (size_t i = sign.size(); i < e; i++) {
    if (sci[i] != '.') digits.push_back(sci[i]);
  }
  if (exp < -4 || exp >= 16) {
    std::string m = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return sign + m + ebuf;
  }
  std::string out;
  if (exp < 0) {
    out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
    out = digits + std::string(static_cast<size_t>(exp) + 1 - digits.size(), '0') + ".0";
  } else {
    out = digits.substr(0, static_cast<size_t>(exp) + 1) + "." + digits.substr(static_cast<size_t>(exp) + 1);
  }
  return sign + out;
}

// ---- torch objects: storages, tensors, the state dict -------------------------------------------

// The element type of a storage class named in a persistent id.
std::optional<at::ScalarType> storageDtype(const std::string& global) {
  static const std::unordered_map<std::string, at::ScalarType> table = {
      {"FloatStorage", at::kFloat},         {"DoubleStorage", at::kDouble},
      {"HalfStorage", at::kHalf},           {"BFloat16Storage", at::kBFloat16},
      {"LongStorage", at::kLong},           {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},         {"CharStorage", at::kChar},
      {"ByteStorage", at::kByte},           {"BoolStorage", at::kBool},
      {"ComplexFloatStorage", at::kComplexFloat}, {"ComplexDoubleStorage", at::kComplexDouble},
      {"QInt8Storage", at::kQInt8},         {"QUInt8Storage", at::kQUInt8},
      {"QInt32Storage", at::kQInt32},       {"UntypedStorage", at::kByte},
      {"_UntypedStorage", at::kByte},
  };
  // torch.FloatStorage, torch.cuda.FloatStorage (legacy GPU saves), torch.storage.UntypedStorage, ...
  for (const char* prefix : {"torch.cuda.", "torch.storage.", "torch."}) {
    const size_t len = std::strlen(prefix);
    if (global.compare(0, len, prefix) == 0) {
      auto it = table.find(global.substr(len));
      if (it != table.end()) return it->second;
    }
  }
  return std::nullopt;
}

// A torch dtype object (torch.float32, ...), as _rebuild_tensor_v3 receives it.
std::optional<at::ScalarType> torchDtype(const std::string& global) {
  static const std::unordered_map<std::string, at::ScalarType> table = {
      {"torch.float32", at::kFloat},  {"torch.float", at::kFloat},     {"torch.float64", at::kDouble},
      {"torch.double", at::kDouble},  {"torch.float16", at::kHalf},    {"torch.half", at::kHalf},
      {"torch.bfloat16", at::kBFloat16}, {"torch.int64", at::kLong},   {"torch.long", at::kLong},
      {"torch.int32", at::kInt},      {"torch.int", at::kInt},         {"torch.int16", at::kShort},
      {"torch.short", at::kShort},    {"torch.int8", at::kChar},       {"torch.uint8", at::kByte},
      {"torch.bool", at::kBool},      {"torch.complex64", at::kComplexFloat}, {"torch.cfloat", at::kComplexFloat},
      {"torch.complex128", at::kComplexDouble}, {"torch.cdouble", at::kComplexDouble},
  };
  auto it = table.find(global);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

std::vector<int64_t> intTuple(const Value* v, const char* what) {
  if (v->kind != Kind::Tuple && v->kind != Kind::List) throw PickleError(std::string(what) + " must be a tuple of ints, got " + v->describe());
  if (v->items.size() > 64) throw PickleError(std::string(what) + " has more than 64 dimensions");
  std::vector<int64_t> out;
  for (const Value* item : v->items) {
    if (!item->isInt() || item->integer < 0) throw PickleError(std::string(what) + " must hold non-negative ints, got " + item->describe());
    out.push_back(item->integer);
  }
  return out;
}

// storage.as_strided(size, stride, offset) for a storage from the file: checked against the storage's
// bytes first, so a corrupt file cannot make a tensor reach outside its memory.
at::Tensor tensorOnStorage(const StorageRef& ref, at::ScalarType dtype, const Value* offsetV, const Value* sizeV, const Value* strideV) {
  if (!offsetV->isInt() || offsetV->integer < 0) throw PickleError("a tensor's storage offset must be a non-negative int, got " + offsetV->describe());
  const std::vector<int64_t> size = intTuple(sizeV, "a tensor's size");
  const std::vector<int64_t> stride = intTuple(strideV, "a tensor's stride");
  if (size.size() != stride.size()) throw PickleError("a tensor's size and stride differ in length");
  if (std::find(size.begin(), size.end(), 0) != size.end()) {
    return at::empty(size, at::TensorOptions().dtype(dtype));  // no elements: needs no storage
  }
  using Wide = __int128;
  const Wide tbytes = static_cast<Wide>(c10::elementSize(dtype));
  const Wide viewStart = static_cast<Wide>(ref.elementOffset) * static_cast<Wide>(c10::elementSize(ref.dtype));
  const Wide viewBytes = static_cast<Wide>(ref.numel) * static_cast<Wide>(c10::elementSize(ref.dtype));
  if (viewStart % tbytes != 0) throw PickleError("storage '" + ref.key + "' view is not aligned to the tensor's dtype");
  // The index of the last element, offset + sum((size - 1) * stride), in elements of the view; stopped
  // as soon as it passes the view (each term is < 2^126, so the sum cannot overflow before that).
  const Wide capacity = viewBytes / tbytes;  // elements of `dtype` that fit in the view
  Wide last = offsetV->integer;
  for (size_t i = 0; i < size.size() && last < capacity; i++) last += static_cast<Wide>(size[i] - 1) * stride[i];
  if (last >= capacity) {
    throw PickleError("a tensor of shape " + shapeText(size) + ", stride " + shapeText(stride) + " and offset " +
                      std::to_string(offsetV->integer) + " reaches past the end of storage '" + ref.key + "' (" +
                      std::to_string(static_cast<int64_t>(viewBytes)) + " bytes, room for " +
                      std::to_string(static_cast<int64_t>(capacity)) + " elements)");
  }
  const Wide first = viewStart / tbytes + offsetV->integer;  // in elements of `dtype` from the storage start
  at::Tensor t = at::empty({0}, at::TensorOptions().dtype(dtype));
  t.set_(ref.bytes, static_cast<int64_t>(first), size, stride);
  return t;
}

// How to get the bytes of the storage a persistent id names. `view` is the legacy format's view
// metadata (None otherwise).
using StorageProvider = std::function<StorageRef(const std::string& key, at::ScalarType dtype, int64_t numel, const Value* view)>;

// The torch-specific part of unpickling: storages from persistent ids, and the few functions
// torch.save uses to rebuild tensors. Nothing else is recognised (see pickle.h).
class TorchHooks {
 public:
  TorchHooks(StorageProvider provider, bool unknownStorageIsError)
      : provider_(std::move(provider)), unknownStorageIsError_(unknownStorageIsError) {
    hooks_.persistentLoad = [this](ValueArena& arena, Value* pid) { return persistentLoad(arena, pid); };
    hooks_.call = [this](ValueArena& arena, const std::string& name, const std::vector<Value*>& args) { return call(arena, name, args); };
  }
  const pickle::Hooks& hooks() const { return hooks_; }

 private:
  Value* persistentLoad(ValueArena& arena, Value* pid) {
    const auto& a = pid->items;
    if (pid->kind != Kind::Tuple || a.empty() || !a[0]->isStr()) throw PickleError("unsupported persistent id " + pid->describe());
    if (a[0]->str == "module" && a.size() >= 2) {
      // Legacy saves of a whole nn.Module record its class's source code. It is never executed.
      return arena.string(Kind::Opaque, "module class " + a[1]->describe());
    }
    if (a[0]->str != "storage" || a.size() < 5) throw PickleError("unsupported persistent id " + pid->describe());
    const Value* type = a[1];
    const Value* key = a[2];
    const Value* numel = a[4];
    if (!key->isStr() && !key->isInt()) throw PickleError("a storage key must be a str or an int, got " + key->describe());
    if (!numel->isInt() || numel->integer < 0) throw PickleError("a storage size must be a non-negative int, got " + numel->describe());
    const std::string keyText = key->isStr() ? key->str : std::to_string(key->integer);
    std::optional<at::ScalarType> dtype = type->kind == Kind::Global ? storageDtype(type->str) : std::nullopt;
    if (!dtype) {
      if (unknownStorageIsError_) throw PickleError("unsupported storage type " + type->describe());
      return arena.string(Kind::Opaque, "storage of type " + type->describe());  // its tensors are skipped
    }
    return arena.storage(provider_(keyText, *dtype, numel->integer, a.size() > 5 ? a[5] : nullptr));
  }

  Value* call(ValueArena& arena, const std::string& name, const std::vector<Value*>& a) {
    auto tensorValue = [&](at::Tensor t) {
      Value* v = arena.make(Kind::Tensor);
      v->tensor = std::move(t);
      return v;
    };
    auto onStorage = [&](const Value* storage, std::optional<at::ScalarType> dtype) -> Value* {
      if (storage->kind != Kind::Storage) return arena.string(Kind::Opaque, "tensor on " + storage->describe());
      const at::ScalarType type = dtype.value_or(storage->storage->dtype);
      if (c10::isQIntType(type)) return arena.string(Kind::Opaque, "quantized tensor");
      return tensorValue(tensorOnStorage(*storage->storage, type, a[1], a[2], a[3]));
    };
    // _rebuild_tensor(storage, offset, size, stride); _v2 adds requires_grad, backward_hooks[, metadata].
    if ((name == "torch._utils._rebuild_tensor_v2" && a.size() >= 4) || (name == "torch._utils._rebuild_tensor" && a.size() == 4)) {
      return onStorage(a[0], std::nullopt);
    }
    // _v3 adds the tensor's dtype after backward_hooks (the storage may be untyped).
    if (name == "torch._utils._rebuild_tensor_v3" && a.size() >= 7) {
      std::optional<at::ScalarType> dtype = a[6]->kind == Kind::Global ? torchDtype(a[6]->str) : std::nullopt;
      if (!dtype) return arena.string(Kind::Opaque, "tensor of dtype " + a[6]->describe());
      return onStorage(a[0], dtype);
    }
    // nn.Parameter(data, requires_grad, backward_hooks[, state]) → its data.
    if ((name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") && !a.empty()) {
      return a[0]->isTensor() ? a[0] : arena.string(Kind::Opaque, "parameter of " + a[0]->describe());
    }
    // Tensor subclasses: _rebuild_from_type_v2(func, new_type, args, state) → func(*args) as a plain tensor.
    if ((name == "torch._tensor._rebuild_from_type_v2" || name == "torch._tensor._rebuild_from_type") && a.size() >= 3 &&
        a[0]->kind == Kind::Global && a[2]->kind == Kind::Tuple && depth_ < 4) {
      depth_++;
      Value* inner = call(arena, a[0]->str, a[2]->items);
      depth_--;
      if (inner && inner->isTensor()) return inner;
      return arena.string(Kind::Opaque, "tensor subclass " + a[1]->describe());
    }
    return nullptr;  // not ours: the interpreter makes it opaque
  }

  pickle::Hooks hooks_;
  StorageProvider provider_;
  bool unknownStorageIsError_;
  int depth_ = 0;
};

bool holdsTensors(const Value& dict) {
  for (size_t i = 1; i < dict.items.size(); i += 2) {
    if (dict.items[i]->isTensor()) return true;
  }
  return false;
}

bool isDictLike(const Value* v) { return v->isDict() || (v->kind == Kind::Opaque && v->dictLike); }

std::optional<std::string> scalarText(const Value* v) {
  switch (v->kind) {
    case Kind::None: return std::string("None");
    case Kind::Bool: return std::string(v->boolean ? "True" : "False");
    case Kind::Int: return std::to_string(v->integer);
    case Kind::Float: return pythonFloat(v->real);
    case Kind::Str: return v->str;
    default: return std::nullopt;
  }
}

// The dict that is the state dict: `dict` itself if it holds tensors, else the first of the usual
// wrapper keys that leads to one. The scalars of every wrapper on the way become metadata.
const Value* findStateDict(const Value* dict, std::map<std::string, std::string>& metadata, int depth) {
  if (holdsTensors(*dict)) return dict;
  if (depth >= 4) return nullptr;
  static const char* kWrappers[] = {"state_dict", "model", "ema", "params_ema", "module"};
  for (const char* key : kWrappers) {
    const Value* inner = pickle::dictGet(*dict, key);
    if (!inner || !isDictLike(inner)) continue;
    if (const Value* found = findStateDict(inner, metadata, depth + 1)) {
      for (const auto& [k, v] : pickle::stringEntries(*dict)) {
        if (auto text = scalarText(v)) metadata.emplace(k, *text);
      }
      return found;
    }
  }
  return nullptr;
}

// Turn the unpickled object into the checkpoint's state dict and metadata.
void unwrapStateDict(const std::string& path, const Value* root, Checkpoint& out) {
  if (!isDictLike(root)) {
    if (root->isTensor()) corrupt(path, "the file holds a single tensor, not a state dict (a dict of tensors)");
    std::string hint = root->kind == Kind::Opaque ? "; it looks like a whole pickled object (torch.save(model)): save model.state_dict() instead" : "";
    corrupt(path, "the file holds a " + root->describe() + ", not a state dict (a dict of tensors)" + hint);
  }
  const Value* sd = findStateDict(root, out.metadata, 0);
  if (!sd) {  // a dict without tensors (e.g. only training state): no tensors, its scalars as metadata
    for (const auto& [k, v] : pickle::stringEntries(*root)) {
      if (auto text = scalarText(v)) out.metadata.emplace(k, *text);
    }
    return;
  }
  for (const auto& [name, v] : pickle::stringEntries(*sd)) {
    if (v->isTensor()) out.tensors.emplace_back(name, v->tensor);
  }
  // nn.DataParallel / DistributedDataParallel save every key with a 'module.' prefix.
  const std::string prefix = "module.";
  const bool allPrefixed = !out.tensors.empty() && std::all_of(out.tensors.begin(), out.tensors.end(), [&](const auto& e) {
    return e.first.size() > prefix.size() && e.first.compare(0, prefix.size(), prefix) == 0;
  });
  if (allPrefixed) {
    for (auto& e : out.tensors) e.first.erase(0, prefix.size());
  }
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

// Calls `progress` at most about 200 times over the whole read (every event crosses to JS).
class Throttle {
 public:
  Throttle(const CheckpointProgress& progress, double total) : progress_(progress), total_(total) {}
  void add(double bytes) {
    done_ += bytes;
    if (!progress_) return;
    if (done_ >= total_ || done_ - sent_ >= total_ / 200) {
      sent_ = done_;
      progress_(done_, total_);
    }
  }
  // The last event says "complete", also when some bytes were never needed (unused zip records).
  void finish() {
    if (progress_ && sent_ != total_) progress_(total_, total_);
    sent_ = total_;
  }

 private:
  const CheckpointProgress& progress_;
  double total_;
  double done_ = 0;
  double sent_ = 0;
};

// ---- torch.save: zip format ---------------------------------------------------------------------

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
      // checks); a deflated one is bounded by deflate's best ratio (1032:1).
      if (r.compressed > file.size() || (r.method != 0 && r.size / 1032 > r.compressed + 1)) {
        corrupt(path, "zip record '" + name + "' claims " + std::to_string(r.size) + " bytes from " + std::to_string(r.compressed) + " stored bytes");
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

// ---- torch.save: legacy format (torch < 1.6, or _use_new_zipfile_serialization=False) ------------

// pickle(0x1950a86a20f9469cfc6c) starts every legacy file: the int's little-endian bytes.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);

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

// ---- safetensors --------------------------------------------------------------------------------

using Json = nlohmann::ordered_json;
constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;  // the format's own limit

std::optional<at::ScalarType> safetensorsDtype(const std::string& name) {
  static const std::unordered_map<std::string, at::ScalarType> table = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool},
  };
  auto it = table.find(name);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

const char* safetensorsDtypeName(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return "F64";
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: return nullptr;
  }
}

Checkpoint readSafetensors(const std::string& path, const File& file, const CheckpointProgress& progress) {
  const uint64_t size = file.size();
  if (size < 8) corrupt(path, "too short for a safetensors file (" + std::to_string(size) + " bytes)");
  uint8_t lenBytes[8];
  file.readAt(0, lenBytes, 8);
  const uint64_t headerLen = rd64(lenBytes);
  if (headerLen > kMaxSafetensorsHeader) {
    corrupt(path, "safetensors header length " + std::to_string(headerLen) + " is over the format's 100 MB limit (corrupt header)");
  }
  if (headerLen > size - 8) {
    corrupt(path, "safetensors header length " + std::to_string(headerLen) + " runs past the end of the " + std::to_string(size) + "-byte file (truncated or corrupt)");
  }
  std::string header(static_cast<size_t>(headerLen), '\0');
  file.readAt(8, header.data(), header.size());
  if (header.empty() || header[0] != '{') corrupt(path, "the safetensors header is not a JSON object");

  Json j;
  try {
    std::unordered_set<std::string> seen;
    j = Json::parse(header, [&](int depth, Json::parse_event_t event, Json& parsed) {
      if (depth > 8) throw PickleError("the safetensors header is nested too deeply");
      if (event == Json::parse_event_t::key && depth == 1 && !seen.insert(parsed.get<std::string>()).second) {
        throw PickleError("the safetensors header names '" + parsed.get<std::string>() + "' twice");
      }
      return true;
    });
  } catch (const Json::exception& e) {
    corrupt(path, std::string("the safetensors header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) corrupt(path, "the safetensors header is not a JSON object");

  struct Entry {
    std::string name;
    at::ScalarType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  const uint64_t dataStart = 8 + headerLen;
  const uint64_t dataSize = size - dataStart;
  Checkpoint out{CheckpointFormat::Safetensors, {}, {}};
  std::vector<Entry> entries;
  for (const auto& [name, v] : j.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) corrupt(path, "__metadata__ is not a JSON object");
      for (const auto& [k, mv] : v.items()) {
        if (!mv.is_string()) corrupt(path, "__metadata__ value '" + k + "' is not a string");
        out.metadata[k] = mv.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { corrupt(path, "tensor '" + name + "': " + what); };
    if (!v.is_object()) bad("its header entry is not an object");
    const auto dt = v.find("dtype");
    const auto sh = v.find("shape");
    const auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) bad("no dtype");
    if (sh == v.end() || !sh->is_array()) bad("no shape");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
      bad("data_offsets must be two non-negative integers");
    }
    Entry e{name, at::kFloat, {}, (*off)[0].get<uint64_t>(), (*off)[1].get<uint64_t>()};
    const std::string dtypeName = dt->get<std::string>();
    std::optional<at::ScalarType> dtype = safetensorsDtype(dtypeName);
    if (!dtype) bad("unsupported dtype '" + dtypeName + "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
    e.dtype = *dtype;
    __int128 numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) bad("shape must hold non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > (uint64_t{1} << 62)) bad("absurd shape");
      numel *= dim;
      if (numel > (__int128{1} << 62)) bad("absurd shape");
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const __int128 nbytes = numel * static_cast<__int128>(c10::elementSize(e.dtype));
    if (e.end < e.begin || e.end > dataSize) {
      bad("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] lie outside the " + std::to_string(dataSize) + " data bytes of the file (truncated or corrupt)");
    }
    if (static_cast<__int128>(e.end - e.begin) != nbytes) {
      bad("shape " + shapeText(e.shape) + " of " + dtypeName + " needs " + std::to_string(static_cast<int64_t>(nbytes)) + " bytes, data_offsets give " + std::to_string(e.end - e.begin));
    }
    entries.push_back(std::move(e));
  }
  // The data must be covered exactly: no overlaps, no holes, nothing after the last tensor.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t pos = 0;
  for (const Entry& e : entries) {
    if (e.begin < pos) corrupt(path, "tensor '" + e.name + "' overlaps another tensor's data");
    if (e.begin > pos) corrupt(path, "bytes " + std::to_string(pos) + ".." + std::to_string(e.begin) + " of the data belong to no tensor");
    pos = e.end;
  }
  if (pos != dataSize) corrupt(path, std::to_string(dataSize - pos) + " bytes after the last tensor belong to no tensor");

  // In file order; each tensor gets its own memory, read straight into it.
  Throttle throttle(progress, static_cast<double>(dataSize));
  for (const Entry& e : entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
    file.readAt(dataStart + e.begin, t.data_ptr(), static_cast<size_t>(e.end - e.begin));
    out.tensors.emplace_back(e.name, std::move(t));
    throttle.add(static_cast<double>(e.end - e.begin));
  }
  throttle.finish();
  return out;
}

void writeAll(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      ioError("write", path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// A temporary file next to the target, removed unless commit() renamed it into place.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path) : path_(path) {
    static std::atomic<uint64_t> counter{0};
    for (int attempt = 0; attempt < 100 && fd_ < 0; attempt++) {
      tmp_ = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && errno != EEXIST) ioError("write", path, errno);
    }
    if (fd_ < 0) ioError("write", path, EEXIST);
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  int fd() const { return fd_; }
  void commit() {
    if (::fsync(fd_) != 0) ioError("write", path_, errno);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) ioError("write", path_, errno);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) ioError("write", path_, errno);
    committed_ = true;
  }

 private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

// ---- the public functions -----------------------------------------------------------------------

Checkpoint readCheckpoint(const std::string& path) { return readCheckpoint(path, nullptr); }

Checkpoint readCheckpoint(const std::string& path, const CheckpointProgress& progress) {
  if (path.empty()) invalidArgument("the checkpoint path is empty");
  File file(path);
  if (file.size() == 0) corrupt(path, "the file is empty (0 bytes)");
  uint8_t head[264] = {0};
  const size_t headLen = static_cast<size_t>(std::min<uint64_t>(file.size(), sizeof(head)));
  file.readAt(0, head, headLen);
  auto endsWith = [&](const std::string& suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  try {
    // Sniffed in this order: a zip's local header; a safetensors header (8-byte length, then '{', which
    // a legacy pickle never has at byte 8); a legacy pickle (PROTO opcode).
    if (headLen >= 4 && (std::memcmp(head, "PK\x03\x04", 4) == 0 || std::memcmp(head, "PK\x05\x06", 4) == 0)) {
      return readTorchZip(path, file, progress);
    }
    if (headLen >= 9 && head[8] == '{') return readSafetensors(path, file, progress);
    if (head[0] == 0x80) return readTorchLegacy(path, file, progress);
    if (endsWith(".safetensors")) return readSafetensors(path, file, progress);
  } catch (const PickleError& e) {
    corrupt(path, e.what());
  }
  corrupt(path, "not a checkpoint: the file holds " + describeContent(head, headLen) +
                    " (expected a torch.save file, zip or legacy, or a safetensors file)");
}

void writeSafetensors(const std::string& path, const StateDict& tensors, const std::map<std::string, std::string>& metadata) {
  writeSafetensors(path, tensors, metadata, nullptr);
}

void writeSafetensors(const std::string& path, const StateDict& tensors, const std::map<std::string, std::string>& metadata,
                      const CheckpointProgress& progress) {
  if (path.empty()) invalidArgument("the safetensors path is empty");
  Json header = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  std::unordered_set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") invalidArgument("'__metadata__' cannot be a tensor name in safetensors");
    if (!names.insert(name).second) invalidArgument("tensor name '" + name + "' appears twice");
    if (!t.defined()) invalidArgument("tensor '" + name + "' is undefined");
    const char* dtype = safetensorsDtypeName(t.scalar_type());
    if (!dtype) invalidArgument("tensor '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())) + ", which safetensors cannot store here");
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * c10::elementSize(t.scalar_type());
    Json entry = Json::object();
    entry["dtype"] = dtype;
    entry["shape"] = t.sizes().vec();
    entry["data_offsets"] = Json::array({offset, offset + nbytes});
    header[name] = std::move(entry);
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {
    invalidArgument(std::string("tensor names and metadata must be valid UTF-8: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned

  AtomicFile out(path);
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  writeAll(out.fd(), len, 8, path);
  writeAll(out.fd(), text.data(), text.size(), path);
  Throttle throttle(progress, static_cast<double>(offset));
  for (const auto& [name, t] : tensors) {
    // One tensor at a time on the CPU, so a GPU state dict never needs a second full copy.
    const at::Tensor c = t.device().is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
    writeAll(out.fd(), c.data_ptr(), c.nbytes(), path);
    throttle.add(static_cast<double>(c.nbytes()));
  }
  out.commit();
  throttle.finish();
}

// ---- bindings -----------------------------------------------------------------------------------

CheckpointProgress jobProgress(JobContext& ctx, const char* stage) {
  return [&ctx, stage](double done, double total) {
    ctx.checkAbort();
    ctx.progress(done, total, stage);
  };
}

namespace {

std::string pathArgument(const Napi::Value& v) {
  if (!v.IsString()) invalidArgument("path must be a non-empty string");
  std::string path = v.As<Napi::String>();
  if (path.empty() || path.find('\0') != std::string::npos) invalidArgument("path must be a non-empty string without NUL characters");
  return path;
}


// An own data property (Set() would run the __proto__ setter for a key named "__proto__").
void defineValue(Napi::Object obj, const std::string& key, Napi::Value value) {
  obj.DefineProperty(Napi::PropertyDescriptor::Value(key, value, static_cast<napi_property_attributes>(napi_writable | napi_enumerable | napi_configurable)));
}

}  // namespace

Napi::Value ReadCheckpoint(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathArgument(info[0]);
    return startJob(info.Env(), info[1], "bia.checkpoint.read", [path](JobContext& ctx) -> Finisher {
      auto ck = std::make_shared<Checkpoint>(readCheckpoint(path, jobProgress(ctx, "read")));
      return [ck](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("format", formatName(ck->format));
        Napi::Object metadata = Napi::Object::New(env);
        for (const auto& [k, v] : ck->metadata) defineValue(metadata, k, Napi::String::New(env, v));
        out.Set("metadata", metadata);
        Napi::Array tensors = Napi::Array::New(env, ck->tensors.size());
        for (size_t i = 0; i < ck->tensors.size(); i++) {
          Napi::Array pair = Napi::Array::New(env, 2);
          pair.Set(0u, Napi::String::New(env, ck->tensors[i].first));
          pair.Set(1u, TensorHandle::Wrap(env, ck->tensors[i].second));
          tensors.Set(static_cast<uint32_t>(i), pair);
        }
        out.Set("tensors", tensors);
        return out;
      };
    });
  });
}

Napi::Value WriteSafetensors(const Napi::CallbackInfo& info) {
  return guardedPromise(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathArgument(info[0]);
    if (!info[1].IsArray()) invalidArgument("tensors must be an array of [name, Tensor] pairs");
    Napi::Array entries = info[1].As<Napi::Array>();
    StateDict tensors;
    for (uint32_t i = 0; i < entries.Length(); i++) {
      Napi::Value e = entries.Get(i);
      if (!e.IsArray() || e.As<Napi::Array>().Length() != 2 || !e.As<Napi::Array>().Get(0u).IsString()) {
        invalidArgument("tensors[" + std::to_string(i) + "] must be a [name, Tensor] pair");
      }
      const std::string name = e.As<Napi::Array>().Get(0u).As<Napi::String>();
      const std::string what = "tensor '" + name + "'";
      tensors.emplace_back(name, TensorHandle::From(e.As<Napi::Array>().Get(1u), what.c_str()));
    }
    std::map<std::string, std::string> metadata;
    if (!info[2].IsUndefined() && !info[2].IsNull()) {
      if (!info[2].IsObject()) invalidArgument("metadata must be an object of strings");
      Napi::Object m = info[2].As<Napi::Object>();
      Napi::Array keys = m.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        const std::string k = keys.Get(i).ToString();
        Napi::Value v = m.Get(k);
        if (!v.IsString()) invalidArgument("metadata['" + k + "'] must be a string");
        metadata[k] = v.As<Napi::String>();
      }
    }
    return startJob(info.Env(), info[3], "bia.checkpoint.writeSafetensors", [path, tensors, metadata](JobContext& ctx) -> Finisher {
      writeSafetensors(path, tensors, metadata, jobProgress(ctx, "write"));
      return nullptr;
    });
  });
}

}  // namespace bia
