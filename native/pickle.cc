#include "pickle.h"

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "errors.h"

namespace bia {
namespace pickle {

// ---- byte sources -------------------------------------------------------------------------------

namespace {

[[noreturn]] void truncated(uint64_t offset, size_t wanted, uint64_t left) {
  throw PickleError("unexpected end of data at byte " + std::to_string(offset) + ": needed " + std::to_string(wanted) +
                    " more byte(s), " + std::to_string(left) + " left (the file is truncated or corrupt)");
}

}  // namespace

void MemorySource::read(void* dst, size_t n) {
  if (n > remaining()) truncated(pos_, n, remaining());
  if (n > 0) std::memcpy(dst, data_ + pos_, n);
  pos_ += n;
}

FileSource::FileSource(std::FILE* file, uint64_t size) : file_(file), size_(size), buffer_(64 * 1024) {
  if (std::fseek(file_, 0, SEEK_SET) != 0) throw BiaError(ErrorCode::Io, std::string("seek error: ") + std::strerror(errno));
}

void FileSource::read(void* dst, size_t n) {
  if (n > remaining()) truncated(pos_, n, remaining());
  auto* out = static_cast<uint8_t*>(dst);
  const size_t buffered = std::min(n, bufEnd_ - bufStart_);
  if (buffered > 0) {
    std::memcpy(out, buffer_.data() + bufStart_, buffered);
    bufStart_ += buffered;
    out += buffered;
    n -= buffered;
    pos_ += buffered;
  }
  if (n == 0) return;
  auto check = [&](size_t got, size_t want) {
    if (got == want) return;
    if (std::ferror(file_)) throw BiaError(ErrorCode::Io, std::string("read error: ") + std::strerror(errno));
    truncated(pos_, want, got);  // the file shrank while we read it
  };
  if (n >= buffer_.size()) {  // large reads (storage bytes) go straight to their destination
    check(std::fread(out, 1, n, file_), n);
    pos_ += n;
    return;
  }
  const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), size_ - pos_));
  bufStart_ = 0;
  bufEnd_ = std::fread(buffer_.data(), 1, want, file_);
  check(bufEnd_, want);
  std::memcpy(out, buffer_.data(), n);
  bufStart_ = n;
  pos_ += n;
}

// ---- values -------------------------------------------------------------------------------------

const char* kindName(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::BigInt: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Opaque: return "object";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "value";
}

namespace {

// Descriptions never grow with what they describe: an object made by calling the result of a call
// of ... is described in the same few bytes as the first one.
std::string clip(const std::string& s, size_t n) { return s.size() > n ? s.substr(0, n) + "..." : s; }

constexpr size_t kNameChars = 120;

}  // namespace

std::string Value::describe() const {
  switch (kind) {
    case Kind::Tuple: return "tuple of " + std::to_string(items.size());
    case Kind::List: return "list of " + std::to_string(items.size());
    case Kind::Dict: return "dict of " + std::to_string(items.size() / 2);
    case Kind::Global: return "global " + clip(str, kNameChars);
    case Kind::Opaque: return "object " + clip(str, kNameChars);
    case Kind::Str: return "str '" + clip(str, 40) + "'";
    case Kind::Int: return "int " + std::to_string(integer);
    default: return kindName(kind);
  }
}

void ValueArena::allowFor(uint64_t bytes) {
  const uint64_t room = (std::numeric_limits<size_t>::max() - kBaseBudget) / kBudgetPerByte;
  budget_ = std::max(budget_, kBaseBudget + static_cast<size_t>(std::min<uint64_t>(bytes, room)) * kBudgetPerByte);
}

void ValueArena::charge(size_t bytes) {
  charged_ += bytes;
  if (charged_ > budget_) {
    throw PickleError("the pickle needs more than " + std::to_string(budget_ >> 20) +
                      " MiB of memory to unpack, far more than a state dict of its size (refusing to go on)");
  }
}

Value* ValueArena::make(Kind kind) {
  if (values_.size() >= kMaxValues) {
    throw PickleError("the pickle holds more than " + std::to_string(kMaxValues) + " objects (refusing to go on)");
  }
  charge(sizeof(Value));
  values_.emplace_back();
  Value* v = &values_.back();
  v->kind = kind;
  return v;
}

Value* ValueArena::storage(StorageRef ref) {
  Value* v = make(Kind::Storage);
  storages_.push_back(std::move(ref));
  v->storage = &storages_.back();
  return v;
}

Value* ValueArena::none() {
  if (!none_) none_ = make(Kind::None);
  return none_;
}

Value* ValueArena::boolean(bool b) {
  Value*& slot = b ? true_ : false_;
  if (!slot) {
    slot = make(Kind::Bool);
    slot->boolean = b;
  }
  return slot;
}

Value* ValueArena::integer(int64_t i) {
  if (i >= 0 && i < 256) {  // sizes, strides and BININT1 operands: shared
    if (smallInts_.empty()) smallInts_.assign(256, nullptr);
    Value*& slot = smallInts_[static_cast<size_t>(i)];
    if (!slot) {
      slot = make(Kind::Int);
      slot->integer = i;
    }
    return slot;
  }
  Value* v = make(Kind::Int);
  v->integer = i;
  return v;
}

Value* ValueArena::string(Kind kind, std::string s) {
  charge(s.size());
  Value* v = make(kind);
  v->str = std::move(s);
  return v;
}

std::vector<std::pair<std::string, Value*>> stringEntries(const Value& dict) {
  std::vector<std::pair<std::string, Value*>> out;
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const Value* k = dict.items[i];
    if (!k->isStr()) continue;
    auto it = index.find(k->str);
    if (it != index.end()) {
      out[it->second].second = dict.items[i + 1];
    } else {
      index.emplace(k->str, out.size());
      out.emplace_back(k->str, dict.items[i + 1]);
    }
  }
  return out;
}

Value* dictGet(const Value& dict, const std::string& key) {
  Value* found = nullptr;
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    if (dict.items[i]->isStr() && dict.items[i]->str == key) found = dict.items[i + 1];  // the last one wins
  }
  return found;
}

// ---- the interpreter ----------------------------------------------------------------------------

namespace {

// Opcode bytes (CPython Lib/pickle.py).
enum Op : uint8_t {
  MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', FLOAT = 'F', INT = 'I', BININT = 'J',
  BININT1 = 'K', LONG = 'L', BININT2 = 'M', NONE = 'N', PERSID = 'P', BINPERSID = 'Q', REDUCE = 'R',
  STRING = 'S', BINSTRING = 'T', SHORT_BINSTRING = 'U', UNICODE = 'V', BINUNICODE = 'X', APPEND = 'a',
  BUILD = 'b', GLOBAL = 'c', DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e', GET = 'g', BINGET = 'h', INST = 'i',
  LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']', OBJ = 'o', PUT = 'p', BINPUT = 'q', LONG_BINPUT = 'r',
  SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u', BINFLOAT = 'G',
  // protocol 2
  PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, TUPLE1 = 0x85, TUPLE2 = 0x86,
  TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b,
  // protocol 3
  BINBYTES = 'B', SHORT_BINBYTES = 'C',
  // protocol 4
  SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90,
  FROZENSET = 0x91, NEWOBJ_EX = 0x92, STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95,
  // protocol 5
  BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97, READONLY_BUFFER = 0x98,
};

class Interpreter {
 public:
  Interpreter(ByteSource& src, ValueArena& arena, const Hooks& hooks, const std::string& context)
      : src_(src), arena_(arena), hooks_(hooks), context_(context) {}

  Value* run() {
    for (;;) {
      opOffset_ = src_.offset();
      const uint8_t op = u8();
      lastOp_ = op;
      if (op == STOP) {
        Value* result = pop();
        return result;
      }
      step(op);
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02x", lastOp_);
    throw PickleError(context_ + ": " + what + " (opcode " + hex + " at byte " + std::to_string(opOffset_) + ")");
  }

 private:
  // -- reading --
  uint8_t u8() {
    uint8_t b;
    readBytes(&b, 1);
    return b;
  }
  void readBytes(void* dst, size_t n) {
    try {
      src_.read(dst, n);
    } catch (const PickleError& e) {
      fail(e.what());
    }
  }
  template <typename T>
  T le() {  // little-endian integer
    uint8_t b[sizeof(T)];
    readBytes(b, sizeof(T));
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); i++) v |= static_cast<uint64_t>(b[i]) << (8 * i);
    return static_cast<T>(v);
  }
  std::string bytes(uint64_t n) {
    if (n > src_.remaining()) {
      fail("a string of " + std::to_string(n) + " bytes runs past the end of the data (" +
           std::to_string(src_.remaining()) + " bytes left)");
    }
    std::string s(static_cast<size_t>(n), '\0');
    readBytes(s.data(), s.size());
    return s;
  }
  // A text line (GLOBAL operands), without its newline.
  std::string line() {
    std::string s;
    for (;;) {
      uint8_t c;
      readBytes(&c, 1);
      if (c == '\n') return s;
      if (s.size() >= 4096) fail("a GLOBAL name longer than 4096 bytes");
      s.push_back(static_cast<char>(c));
    }
  }

  // -- the stack --
  // The stack, the marks and the memo can grow without new values (DUP, MARK, MEMOIZE on shared
  // scalars), so they get the same cap: a hostile pickle's cost stays bounded.
  void bounded(size_t size, const char* what) {
    if (size >= ValueArena::kMaxValues) fail(std::string("the pickle's ") + what + " grew past " + std::to_string(ValueArena::kMaxValues) + " entries (refusing to go on)");
  }
  void push(Value* v) {
    bounded(stack_.size(), "stack");
    grow(stack_.size(), stackHigh_);
    stack_.push_back(v);
  }
  // Charges a container that reaches a new high-water mark (the stack and the marks).
  void grow(size_t size, size_t& high) {
    if (size < high) return;
    high = size + 1;
    arena_.charge(sizeof(void*));
  }
  // Charges `n` new container slots (tuple, list and dict items).
  void slots(size_t n) { arena_.charge(n * sizeof(Value*)); }
  Value* pop() {
    if (stack_.size() <= floor()) fail("stack underflow (the pickle is corrupt)");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.size() <= floor()) fail("stack underflow (the pickle is corrupt)");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Value*> popMark() {
    if (marks_.empty()) fail("no MARK on the stack (the pickle is corrupt)");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }

  // -- the memo --
  void memoPut(uint64_t index) {
    Value* v = top();
    auto it = memo_.find(index);
    if (it != memo_.end()) {
      it->second = v;
      return;
    }
    bounded(memo_.size(), "memo");
    arena_.charge(64);  // a hash-map node
    memo_.emplace(index, v);
  }
  Value* memoGet(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo key " + std::to_string(index) + " was never stored (the pickle is corrupt)");
    return it->second;
  }

  // -- values --
  Value* tuple(std::vector<Value*> items) {
    slots(items.size());
    Value* t = arena_.make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }
  Value* integerFromBytes(const std::string& b) {
    if (b.empty()) return arena_.integer(0);
    const bool negative = (static_cast<uint8_t>(b.back()) & 0x80) != 0;
    // Fits in int64 when every byte above the 8th is pure sign extension (and the 8th's top bit agrees).
    bool fits = true;
    for (size_t i = 8; i < b.size(); i++) fits = fits && static_cast<uint8_t>(b[i]) == (negative ? 0xff : 0x00);
    if (b.size() > 8) fits = fits && ((static_cast<uint8_t>(b[7]) & 0x80) != 0) == negative;
    if (!fits) return arena_.string(Kind::BigInt, b);
    uint64_t v = negative ? ~uint64_t{0} : 0;
    for (size_t i = 0; i < std::min<size_t>(8, b.size()); i++) {
      v &= ~(uint64_t{0xff} << (8 * i));
      v |= static_cast<uint64_t>(static_cast<uint8_t>(b[i])) << (8 * i);
    }
    return arena_.integer(static_cast<int64_t>(v));
  }
  Value* opaque(const std::string& what) { return arena_.string(Kind::Opaque, clip(what, kNameChars)); }

  // Call a global (REDUCE): the caller's hook first, then the harmless built-ins, else an opaque value.
  Value* call(Value* callable, Value* args) {
    // Calling something that is not a name (the result of an earlier call): a constant description,
    // so that a chain of calls cannot grow its descriptions with its length.
    if (callable->kind != Kind::Global) return opaque("result of a call");
    static const std::vector<Value*> kNoArgs;
    const std::vector<Value*>& a = args->kind == Kind::Tuple ? args->items : kNoArgs;
    if (hooks_.call) {
      if (Value* r = hooks_.call(arena_, callable->str, a)) return r;
    }
    const std::string& name = callable->str;
    if (name == "collections.OrderedDict" || name == "builtins.dict") {
      Value* d = arena_.make(Kind::Dict);
      if (a.size() == 1 && a[0]->kind == Kind::Dict) {
        slots(a[0]->items.size());  // a copy: calling it again and again must not be free
        d->items = a[0]->items;
      }
      if (a.size() == 1 && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple)) {
        slots(a[0]->items.size());
        for (Value* pair : a[0]->items) {
          if (pair->kind != Kind::Tuple || pair->items.size() != 2) return opaque(name + "(...)");
          d->items.push_back(pair->items[0]);
          d->items.push_back(pair->items[1]);
        }
      }
      return d;
    }
    if ((name == "builtins.set" || name == "builtins.frozenset") && a.size() <= 1) {
      Value* s = arena_.make(name == "builtins.set" ? Kind::List : Kind::Tuple);
      if (a.size() == 1 && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple)) {
        slots(a[0]->items.size());
        s->items = a[0]->items;
      }
      return s;
    }
    return opaque(name + "(...)");
  }
  // cls.__new__(cls, ...) (NEWOBJ, NEWOBJ_EX): an empty OrderedDict, else an opaque instance.
  Value* instantiate(Value* cls) {
    if (cls->kind == Kind::Global && (cls->str == "collections.OrderedDict" || cls->str == "builtins.dict")) {
      return arena_.make(Kind::Dict);
    }
    return opaque(cls->kind == Kind::Global ? cls->str + " instance" : "(instance of " + cls->describe() + ")");
  }

  void setItems(Value* target, const std::vector<Value*>& kv) {
    if (kv.size() % 2 != 0) fail("SETITEMS with an odd number of items");
    if (target->kind == Kind::Opaque) target->dictLike = true;  // a dict subclass we do not know
    else if (target->kind != Kind::Dict) fail("SETITEM on a " + std::string(kindName(target->kind)));
    slots(kv.size());
    target->items.insert(target->items.end(), kv.begin(), kv.end());
  }
  void appendItems(Value* target, const std::vector<Value*>& items) {
    slots(items.size());
    if (target->kind == Kind::Opaque) {
      if (!target->dictLike) target->items.insert(target->items.end(), items.begin(), items.end());
      return;
    }
    if (target->kind != Kind::List) fail("APPEND on a " + std::string(kindName(target->kind)));
    target->items.insert(target->items.end(), items.begin(), items.end());
  }

  [[noreturn]] void unsupported(const char* name, const char* why) { fail(std::string("unsupported pickle opcode ") + name + " (" + why + ")"); }

  void step(uint8_t op) {
    switch (op) {
      case PROTO: {
        const uint8_t p = u8();
        if (p > 5) fail("unsupported pickle protocol " + std::to_string(p));
        return;
      }
      case FRAME: {
        const uint64_t n = le<uint64_t>();
        if (n > src_.remaining()) fail("a FRAME of " + std::to_string(n) + " bytes runs past the end of the data");
        return;  // frames only group opcodes for buffered readers; the contents are read as usual
      }
      case MARK:
        bounded(marks_.size(), "mark stack");
        grow(marks_.size(), marksHigh_);
        marks_.push_back(stack_.size());
        return;
      case POP: pop(); return;
      case POP_MARK: popMark(); return;
      case DUP: push(top()); return;

      case NONE: push(arena_.none()); return;
      case NEWTRUE: push(arena_.boolean(true)); return;
      case NEWFALSE: push(arena_.boolean(false)); return;
      case BININT: push(arena_.integer(le<int32_t>())); return;
      case BININT1: push(arena_.integer(le<uint8_t>())); return;
      case BININT2: push(arena_.integer(le<uint16_t>())); return;
      case LONG1: push(integerFromBytes(bytes(le<uint8_t>()))); return;
      case LONG4: {
        const int32_t n = le<int32_t>();
        if (n < 0) fail("LONG4 with a negative length");
        push(integerFromBytes(bytes(static_cast<uint64_t>(n))));
        return;
      }
      case BINFLOAT: {
        uint8_t b[8];
        readBytes(b, 8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = (bits << 8) | b[i];  // big-endian
        Value* v = arena_.make(Kind::Float);
        std::memcpy(&v->real, &bits, 8);
        push(v);
        return;
      }

      // Strings. Protocol-2 byte strings (BINSTRING) come from Python 2 files, where they hold text.
      case SHORT_BINSTRING: push(arena_.string(Kind::Str, bytes(le<uint8_t>()))); return;
      case BINSTRING: {
        const int32_t n = le<int32_t>();
        if (n < 0) fail("BINSTRING with a negative length");
        push(arena_.string(Kind::Str, bytes(static_cast<uint64_t>(n))));
        return;
      }
      case SHORT_BINUNICODE: push(arena_.string(Kind::Str, bytes(le<uint8_t>()))); return;
      case BINUNICODE: push(arena_.string(Kind::Str, bytes(le<uint32_t>()))); return;
      case BINUNICODE8: push(arena_.string(Kind::Str, bytes(le<uint64_t>()))); return;
      case SHORT_BINBYTES: push(arena_.string(Kind::Bytes, bytes(le<uint8_t>()))); return;
      case BINBYTES: push(arena_.string(Kind::Bytes, bytes(le<uint32_t>()))); return;
      case BINBYTES8: push(arena_.string(Kind::Bytes, bytes(le<uint64_t>()))); return;
      case BYTEARRAY8: push(arena_.string(Kind::Bytes, bytes(le<uint64_t>()))); return;

      // Containers.
      case EMPTY_TUPLE: push(tuple({})); return;
      case TUPLE: push(tuple(popMark())); return;
      case TUPLE1: {
        Value* a = pop();
        push(tuple({a}));
        return;
      }
      case TUPLE2: {
        Value* b = pop();
        Value* a = pop();
        push(tuple({a, b}));
        return;
      }
      case TUPLE3: {
        Value* c = pop();
        Value* b = pop();
        Value* a = pop();
        push(tuple({a, b, c}));
        return;
      }
      case EMPTY_LIST: push(arena_.make(Kind::List)); return;
      case LIST: {
        Value* l = arena_.make(Kind::List);
        l->items = popMark();
        slots(l->items.size());
        push(l);
        return;
      }
      case APPEND: {
        Value* v = pop();
        appendItems(top(), {v});
        return;
      }
      case APPENDS: {
        std::vector<Value*> items = popMark();
        appendItems(top(), items);
        return;
      }
      case EMPTY_DICT: push(arena_.make(Kind::Dict)); return;
      case DICT: {
        std::vector<Value*> kv = popMark();
        if (kv.size() % 2 != 0) fail("DICT with an odd number of items");
        slots(kv.size());
        Value* d = arena_.make(Kind::Dict);
        d->items = std::move(kv);
        push(d);
        return;
      }
      case SETITEM: {
        Value* v = pop();
        Value* k = pop();
        setItems(top(), {k, v});
        return;
      }
      case SETITEMS: {
        std::vector<Value*> kv = popMark();
        setItems(top(), kv);
        return;
      }
      case EMPTY_SET: push(arena_.make(Kind::List)); return;
      case ADDITEMS: {
        std::vector<Value*> items = popMark();
        Value* s = top();
        if (s->kind != Kind::List) fail("ADDITEMS on a " + std::string(kindName(s->kind)));
        slots(items.size());
        s->items.insert(s->items.end(), items.begin(), items.end());
        return;
      }
      case FROZENSET: push(tuple(popMark())); return;

      // The memo.
      case BINPUT: memoPut(le<uint8_t>()); return;
      case LONG_BINPUT: memoPut(le<uint32_t>()); return;
      case MEMOIZE: memoPut(memo_.size()); return;
      case BINGET: push(memoGet(le<uint8_t>())); return;
      case LONG_BINGET: push(memoGet(le<uint32_t>())); return;

      // Globals and calls: nothing is imported or executed (see call()).
      case GLOBAL: {
        std::string module = line();
        std::string name = line();
        push(arena_.string(Kind::Global, module + "." + name));
        return;
      }
      case STACK_GLOBAL: {
        Value* name = pop();
        Value* module = pop();
        if (!module->isStr() || !name->isStr()) fail("STACK_GLOBAL needs two str operands");
        push(arena_.string(Kind::Global, module->str + "." + name->str));
        return;
      }
      case REDUCE: {
        Value* args = pop();
        Value* callable = pop();
        push(call(callable, args));
        return;
      }
      case NEWOBJ: {
        pop();  // args
        push(instantiate(pop()));
        return;
      }
      case NEWOBJ_EX: {
        pop();  // kwargs
        pop();  // args
        push(instantiate(pop()));
        return;
      }
      case OBJ: {  // protocol 1: MARK cls args... OBJ
        std::vector<Value*> items = popMark();
        if (items.empty()) fail("OBJ without a class");
        push(instantiate(items[0]));
        return;
      }
      case BUILD: {
        // obj.__setstate__(state): the state only sets attributes (e.g. an OrderedDict's _metadata),
        // which a state dict does not need. The object stays as it is.
        pop();
        top();
        return;
      }
      case EXT1: push(opaque("extension " + std::to_string(le<uint8_t>()))); return;
      case EXT2: push(opaque("extension " + std::to_string(le<uint16_t>()))); return;
      case EXT4: push(opaque("extension " + std::to_string(le<int32_t>()))); return;
      case BINPERSID: {
        Value* pid = pop();
        if (!hooks_.persistentLoad) fail("a persistent id, but this stream has no storages");
        push(hooks_.persistentLoad(arena_, pid));
        return;
      }

      // Protocol 0 writes values as text lines; torch.save has always used protocol 2 or later.
      case INT: unsupported("INT", "protocol-0 text; torch.save writes protocol 2 or later");
      case LONG: unsupported("LONG", "protocol-0 text; torch.save writes protocol 2 or later");
      case FLOAT: unsupported("FLOAT", "protocol-0 text; torch.save writes protocol 2 or later");
      case STRING: unsupported("STRING", "protocol-0 text; torch.save writes protocol 2 or later");
      case UNICODE: unsupported("UNICODE", "protocol-0 text; torch.save writes protocol 2 or later");
      case GET: unsupported("GET", "protocol-0 text; torch.save writes protocol 2 or later");
      case PUT: unsupported("PUT", "protocol-0 text; torch.save writes protocol 2 or later");
      case PERSID: unsupported("PERSID", "protocol-0 text; torch.save writes protocol 2 or later");
      case INST: unsupported("INST", "protocol-0 text; torch.save writes protocol 2 or later");
      case NEXT_BUFFER: unsupported("NEXT_BUFFER", "out-of-band buffers are not part of a file");
      case READONLY_BUFFER: unsupported("READONLY_BUFFER", "out-of-band buffers are not part of a file");
      default: {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02x", op);
        fail(std::string("unknown pickle opcode ") + hex + " (not a pickle, or a corrupt one)");
      }
    }
  }

  ByteSource& src_;
  ValueArena& arena_;
  const Hooks& hooks_;
  const std::string& context_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  size_t stackHigh_ = 0, marksHigh_ = 0;
  uint64_t opOffset_ = 0;
  uint8_t lastOp_ = 0;
};

}  // namespace

Value* load(ByteSource& source, ValueArena& arena, const Hooks& hooks, const std::string& context) {
  arena.allowFor(source.remaining());
  Interpreter interpreter(source, arena, hooks, context);
  try {
    return interpreter.run();
  } catch (const PickleError& e) {
    // The arena's budget errors do not know where in the stream they happened: say it once here.
    const std::string what = e.what();
    if (what.compare(0, context.size(), context) == 0) throw;
    interpreter.fail(what);
  }
}

}  // namespace pickle
}  // namespace bia
