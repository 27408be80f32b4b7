#include "allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

namespace bia {

namespace {

constexpr size_t kLarge = size_t{1} << 20;      // blocks from 1 MiB are cached
constexpr size_t kGranule = size_t{1} << 20;    // and rounded up to whole MiB
constexpr size_t kAlign = size_t{2} << 20;      // 2 MiB aligned, so they can be huge pages

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t limit) : limit_(limit) {}

  // LibTorch 1.13 declares allocate() const; LibTorch ≥ 2.3 non-const. Both are provided so
  // that the one matching the base class overrides it.
  c10::DataPtr allocate(size_t n) const { return const_cast<CachingCpuAllocator*>(this)->alloc(n); }
  c10::DataPtr allocate(size_t n) { return alloc(n); }
  // Pure virtual in LibTorch ≥ 2.3; a plain member before.
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::release; }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    CpuCacheStats s;
    s.enabled = true;
    s.limitBytes = static_cast<int64_t>(limit_);
    s.cachedBytes = static_cast<int64_t>(cached_);
    s.liveBytes = static_cast<int64_t>(live_);
    s.hits = hits_;
    s.misses = misses_;
    return s;
  }

  void empty() {
    std::multimap<size_t, void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks.swap(free_);
      cached_ = 0;
    }
    for (auto& b : blocks) std::free(b.second);
  }

  static CachingCpuAllocator* instance;

 private:
  c10::DataPtr alloc(size_t n) {
    if (n < kLarge) {
      void* p = c10::alloc_cpu(n);
      return {p, p, &c10::free_cpu, c10::Device(c10::kCPU)};
    }
    const size_t size = (n + kGranule - 1) / kGranule * kGranule;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Best fit among cached blocks no more than 1/8 larger than needed.
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= size + size / 8) {
        p = it->second;
        sizes_[p] = it->first;
        live_ += it->first;
        cached_ -= it->first;
        free_.erase(it);
        hits_++;
      } else {
        misses_++;
      }
    }
    if (!p) p = fresh(size);
    return {p, p, &CachingCpuAllocator::release, c10::Device(c10::kCPU)};
  }

  void* fresh(size_t size) {
    void* p = nullptr;
    if (posix_memalign(&p, kAlign, size) != 0 || p == nullptr) {
      empty();  // give the cache back and try once more before failing
      if (posix_memalign(&p, kAlign, size) != 0 || p == nullptr) {
        // The same words LibTorch uses, so the error maps to BIA_OUT_OF_MEMORY.
        throw c10::Error({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                         "DefaultCPUAllocator: not enough memory: you tried to allocate " + std::to_string(size) + " bytes.");
      }
    }
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE);
#endif
    std::lock_guard<std::mutex> lock(mu_);
    sizes_[p] = size;
    live_ += size;
    return p;
  }

  static void release(void* p) {
    if (p == nullptr) return;
    CachingCpuAllocator* self = instance;
    size_t size = 0;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      auto it = self->sizes_.find(p);
      if (it == self->sizes_.end()) {
        // A small block handed out through raw_allocate().
        c10::free_cpu(p);
        return;
      }
      size = it->second;
      self->sizes_.erase(it);
      self->live_ -= size;
      if (self->cached_ + size <= self->limit_) {
        self->free_.emplace(size, p);
        self->cached_ += size;
        return;
      }
    }
    std::free(p);
  }

  const size_t limit_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> sizes_;
  size_t cached_ = 0, live_ = 0;
  int64_t hits_ = 0, misses_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

size_t defaultLimit() {
  const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
  const size_t physical = pages > 0 && pageSize > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(pageSize) : (size_t{8} << 30);
  return std::min(physical / 4, size_t{4} << 30);
}

}  // namespace

void installCpuAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    size_t limit = defaultLimit();
    if (const char* env = std::getenv("BIA_CPU_CACHE_MB")) {
      char* end = nullptr;
      const long long mb = std::strtoll(env, &end, 10);
      if (end != env && *end == '\0' && mb >= 0) limit = static_cast<size_t>(mb) << 20;
    }
    if (limit == 0) return;  // disabled: LibTorch's allocator stays
    // Never destroyed: tensors may be released during static destruction.
    CachingCpuAllocator::instance = new CachingCpuAllocator(limit);
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/10);
  });
}

namespace {
bool mallocTuned = false;
}  // namespace

bool tuneMalloc() {
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(__GLIBC__)
    if (CachingCpuAllocator::instance == nullptr) return;  // no cache: the large blocks are malloc's too
    const char* off = std::getenv("BIA_MALLOC_TUNE");
    if (off != nullptr && std::strcmp(off, "0") == 0) return;
    for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
      if (std::getenv(v) != nullptr) return;
    }
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) return;
    // Both set, so that glibc's dynamic adjustment stays off (either mallopt turns it off).
    mallocTuned = mallopt(M_MMAP_THRESHOLD, static_cast<int>(kLarge)) == 1 && mallopt(M_TRIM_THRESHOLD, 16 << 20) == 1;
#endif
  });
  return mallocTuned;
}

CpuCacheStats cpuCacheStats() {
  CpuCacheStats s = CachingCpuAllocator::instance ? CachingCpuAllocator::instance->stats() : CpuCacheStats{};
  s.mallocTuned = mallocTuned;
  return s;
}

void emptyCpuCache() {
  if (CachingCpuAllocator::instance) CachingCpuAllocator::instance->empty();
}

}  // namespace bia
