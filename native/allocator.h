// A caching CPU allocator for LibTorch. Large activations (a 256² UNet level holds 32 MiB
// tensors) are otherwise mmap'ed and unmapped by malloc on every allocation, and the page faults
// of touching fresh pages cost about as much as the arithmetic on them. Blocks of 1 MiB and more
// are kept after release (up to a bound) and reused; smaller ones go to LibTorch's own allocator.
#pragma once
#include <cstddef>
#include <cstdint>

namespace bia {

struct CpuCacheStats {
  bool enabled = false;
  int64_t limitBytes = 0;
  int64_t cachedBytes = 0;  // free blocks held for reuse
  int64_t liveBytes = 0;    // large blocks in use
  int64_t hits = 0;
  int64_t misses = 0;
};

// Install as LibTorch's CPU allocator (once; BIA_CPU_CACHE_MB=0 disables, other values set the
// bound in MiB; default: a quarter of physical memory, at most 4 GiB).
void installCpuAllocator();
CpuCacheStats cpuCacheStats();
// Release every cached free block to the system.
void emptyCpuCache();

}  // namespace bia
