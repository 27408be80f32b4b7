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
  // glibc malloc's thresholds pinned for the blocks under 1 MiB (tuneMalloc); false: left as they were.
  bool mallocTuned = false;
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

// Blocks under 1 MiB go to malloc. glibc's malloc serves blocks from 128 KiB by mmap and gives the
// top of its heap back from 128 KiB free, raising both thresholds only as large blocks are freed —
// which the cache above never does — so a small model's 128–512 KiB activations were mapped,
// faulted in and unmapped on every call (the tiny UNet's forward 1.6–1.9× slower). Pinning the
// thresholds (mmap from 1 MiB: the blocks the cache takes; trim above 16 MiB free) serves them from
// the heap. Once, at load, after installCpuAllocator; glibc only. Not done where the cache is off
// (BIA_CPU_CACHE_MB=0: every block goes to malloc, whose own rule then suits the large ones better),
// BIA_MALLOC_TUNE=0, or the process already sets malloc's thresholds (MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, or GLIBC_TUNABLES naming glibc.malloc). Returns whether
// it pinned them.
bool tuneMalloc();
// Release every cached free block to the system.
void emptyCpuCache();

}  // namespace bia
