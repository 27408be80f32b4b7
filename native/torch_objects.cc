#include "torch_objects.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>

#include "checkpoint_io.h"

namespace bia::ckpt {

namespace {

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
  if (v->items.size() > kMaxRank) {
    throw PickleError(std::string(what) + " has " + std::to_string(v->items.size()) + " dimensions (at most " + std::to_string(kMaxRank) + ")");
  }
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

}  // namespace

TorchHooks::TorchHooks(StorageProvider provider, bool unknownStorageIsError)
    : provider_(std::move(provider)), unknownStorageIsError_(unknownStorageIsError) {
  hooks_.persistentLoad = [this](ValueArena& arena, Value* pid) { return persistentLoad(arena, pid); };
  hooks_.call = [this](ValueArena& arena, const std::string& name, const std::vector<Value*>& args) { return call(arena, name, args); };
}

Value* TorchHooks::persistentLoad(ValueArena& arena, Value* pid) {
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

Value* TorchHooks::call(ValueArena& arena, const std::string& name, const std::vector<Value*>& a) {
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

namespace {

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

}  // namespace

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

}  // namespace bia::ckpt
