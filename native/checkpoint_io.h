// What the checkpoint formats (torch_zip, torch_legacy, safetensors) share: errors naming the
// file, a regular file read at offsets, little-endian integers, and throttled progress.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "checkpoint.h"

// Storages, safetensors data and the legacy format's element counts are little-endian, and so are
// the hosts LibTorch runs on (x86-64, aarch64); the readers and the writer copy those bytes as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the checkpoint formats assume a little-endian host");

namespace bia::ckpt {

// BIA_CHECKPOINT_ERROR "cannot read checkpoint '<path>': <what>".
[[noreturn]] void corrupt(const std::string& path, const std::string& what);

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t rd32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
inline uint64_t rd64(const uint8_t* p) { return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }

// "[2, 3]"
std::string shapeText(const std::vector<int64_t>& shape);

// A regular file opened for reading; closed on scope exit.
class File {
 public:
  explicit File(const std::string& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  std::FILE* get() const { return fp_; }
  uint64_t size() const { return size_; }

  // Exactly n bytes at `offset`; the caller has checked that they lie inside the file.
  void readAt(uint64_t offset, void* dst, size_t n) const;

 private:
  std::string path_;
  std::FILE* fp_ = nullptr;
  uint64_t size_ = 0;
};

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

}  // namespace bia::ckpt
