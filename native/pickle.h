// A safe interpreter of the pickle opcodes that torch.save writes (protocols 2 to 5, every binary
// opcode). It builds plain data and NEVER imports or calls anything: a global (GLOBAL,
// STACK_GLOBAL) becomes a named value, and calling one (REDUCE, NEWOBJ, ...) asks a hook that knows a
// short list of harmless constructors (OrderedDict, torch's tensor rebuilders); everything else
// becomes an opaque value. A pickle that calls os.system or builtins.eval therefore does nothing.
//
// Values live in an arena owned by the caller (ValueArena), referenced by raw pointers: memo
// references, shared containers and even cycles cost nothing and are freed at once, with no
// recursive destruction. Every length read from the stream is checked against the bytes that
// remain, the memory the values take is charged against a budget proportional to the stream's size,
// and descriptions of unknown objects have a fixed maximum length, so a hostile file can neither
// crash the reader nor make it allocate much more than its own size.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bia {
namespace pickle {

// ---- byte sources -------------------------------------------------------------------------------

// Where pickle bytes come from. read() copies exactly n bytes or throws (truncated stream);
// remaining() bounds every length field before anything is allocated.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual void read(void* dst, size_t n) = 0;
  virtual uint64_t remaining() const = 0;
  virtual uint64_t offset() const = 0;
};

// Bytes already in memory (a zip record).
class MemorySource final : public ByteSource {
 public:
  MemorySource(const void* data, size_t size) : data_(static_cast<const uint8_t*>(data)), size_(size) {}
  void read(void* dst, size_t n) override;
  uint64_t remaining() const override { return size_ - pos_; }
  uint64_t offset() const override { return pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A buffered stream over an open file (legacy torch.save files: pickles followed by raw storage
// bytes, read in one pass). Large reads bypass the buffer and go straight to the destination.
class FileSource final : public ByteSource {
 public:
  // Reads from the start of the file.
  FileSource(std::FILE* file, uint64_t size);
  void read(void* dst, size_t n) override;
  uint64_t remaining() const override { return size_ - pos_; }
  uint64_t offset() const override { return pos_; }

 private:
  std::FILE* file_;
  uint64_t size_;
  uint64_t pos_ = 0;  // logical position (bytes handed out)
  std::vector<uint8_t> buffer_;
  size_t bufStart_ = 0, bufEnd_ = 0;
};

// Thrown by the sources and the interpreter; the checkpoint reader adds the file's path.
class PickleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- values -------------------------------------------------------------------------------------

enum class Kind : uint8_t {
  None,
  Bool,
  Int,      // fits in int64
  BigInt,   // a LONG1/LONG4 too large for int64: `str` holds its little-endian two's complement bytes
  Float,
  Str,      // text (UTF-8)
  Bytes,
  Tuple,
  List,     // also sets (EMPTY_SET/ADDITEMS)
  Dict,     // also collections.OrderedDict; `items` holds k0, v0, k1, v1, ... in insertion order
  Global,   // a module-level name (module.qualname in `str`), never resolved
  Opaque,   // the result of calling something we do not know; `str` describes it
  Storage,  // a torch storage (from a persistent id)
  Tensor,
};

const char* kindName(Kind k);

// A slice of raw storage bytes with the element type that the persistent id gave it.
struct StorageRef {
  c10::Storage bytes;          // shared by every tensor and every persistent id with the same key
  at::ScalarType dtype = at::kByte;
  int64_t elementOffset = 0;   // legacy storage views: first element of the view
  int64_t numel = 0;           // elements visible through this reference
  std::string key;             // for messages
};

// Kept small (96 bytes): a hostile pickle can make one value per byte.
struct Value {
  Kind kind = Kind::None;
  bool boolean = false;
  bool dictLike = false;        // Opaque objects that received SETITEM(S): `items` holds k, v pairs
  int64_t integer = 0;
  double real = 0;
  std::string str;              // Str, Bytes, BigInt bytes, Global/Opaque name
  std::vector<Value*> items;    // Tuple, List, Dict (k, v pairs); Opaque: recorded items (see dictLike)
  const StorageRef* storage = nullptr;  // Storage (owned by the arena)
  at::Tensor tensor;            // Tensor

  bool isStr() const { return kind == Kind::Str; }
  bool isInt() const { return kind == Kind::Int; }
  bool isDict() const { return kind == Kind::Dict; }
  bool isTensor() const { return kind == Kind::Tensor; }
  // A short description for error messages ("int", "tuple of 3", "opaque posix.system(...)").
  std::string describe() const;
};

static_assert(sizeof(Value) <= 96, "keep Value small: the value cap bounds memory through it");

// Owns every value of one file. Scalars that repeat a lot (None, True/False, small ints) are shared.
class ValueArena {
 public:
  // A state dict needs about a dozen values per tensor (4 Mi values: ~300k tensors).
  static constexpr size_t kMaxValues = size_t{1} << 22;
  // The memory the interpreter may spend is also bounded by the size of what it reads: values,
  // container slots, strings, memo entries and stack growth are charged (approximately, in bytes)
  // against kBaseBudget + kBudgetPerByte × the stream's length. A state dict's pickle is mostly key
  // names, small tuples and memo references, well inside this; a hostile one is stopped at once instead
  // of amplifying its size (measured: 1 MB hostile files make the reader grow by at most 62 MiB).
  static constexpr size_t kBaseBudget = size_t{16} << 20;
  static constexpr size_t kBudgetPerByte = 40;
  // Raise the budget for a stream of `bytes` (pickle::load calls it; the largest stream wins).
  void allowFor(uint64_t bytes);
  // Count `bytes` against the budget; throws PickleError when it is spent.
  void charge(size_t bytes);
  size_t charged() const { return charged_; }
  Value* make(Kind kind);
  Value* storage(StorageRef ref);  // a Storage value
  Value* none();
  Value* boolean(bool b);
  Value* integer(int64_t i);
  Value* string(Kind kind, std::string s);
  size_t size() const { return values_.size(); }

 private:
  std::deque<Value> values_;
  std::deque<StorageRef> storages_;
  Value* none_ = nullptr;
  Value* true_ = nullptr;
  Value* false_ = nullptr;
  std::vector<Value*> smallInts_;  // 0..255, made on first use
  size_t charged_ = 0;
  size_t budget_ = kBaseBudget;
};

// A dict's live entries in insertion order; a key set twice keeps its first position and its last
// value (Python semantics). Only str keys are kept; other keys are skipped.
std::vector<std::pair<std::string, Value*>> stringEntries(const Value& dict);
// The value of a str key, or nullptr.
Value* dictGet(const Value& dict, const std::string& key);

// ---- the interpreter ----------------------------------------------------------------------------

struct Hooks {
  // BINPERSID: turn a persistent id into a value (torch: storages). Must not return nullptr.
  std::function<Value*(ValueArena&, Value* pid)> persistentLoad;
  // REDUCE / NEWOBJ on a Global: return the result, or nullptr to let the interpreter decide
  // (its built-ins, else an opaque value).
  std::function<Value*(ValueArena&, const std::string& global, const std::vector<Value*>& args)> call;
};

// Run one pickle from `source` up to its STOP and return the value it produced. `context` names the
// stream in error messages (e.g. "data.pkl"). Throws PickleError on anything malformed.
Value* load(ByteSource& source, ValueArena& arena, const Hooks& hooks, const std::string& context);

}  // namespace pickle
}  // namespace bia
