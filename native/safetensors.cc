#include "safetensors.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "atomic_file.h"
#include "errors.h"
#include "pickle.h"

namespace bia {

namespace {

using pickle::PickleError;
using ckpt::Throttle;
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

}  // namespace

namespace ckpt {

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
    if (sh->size() > kMaxRank) bad("rank " + std::to_string(sh->size()) + ": a tensor may have at most " + std::to_string(kMaxRank) + " dimensions");
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

}  // namespace ckpt

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
  out.write(len, 8);
  out.write(text.data(), text.size());
  Throttle throttle(progress, static_cast<double>(offset));
  for (const auto& [name, t] : tensors) {
    // One tensor at a time on the CPU, so a GPU state dict never needs a second full copy.
    const at::Tensor c = t.device().is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
    out.write(c.data_ptr(), c.nbytes());
    throttle.add(static_cast<double>(c.nbytes()));
  }
  out.commit();
  throttle.finish();
}

}  // namespace bia
