// readCheckpoint: which format a file is in, and its reader (torch_zip, torch_legacy,
// safetensors); writeSafetensors is in safetensors.cc.
#include "checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "checkpoint_io.h"
#include "errors.h"
#include "job_context.h"
#include "pickle.h"
#include "safetensors.h"
#include "torch_legacy.h"
#include "torch_zip.h"

namespace bia {

const char* formatName(CheckpointFormat f) {
  switch (f) {
    case CheckpointFormat::TorchZip: return "torch-zip";
    case CheckpointFormat::TorchLegacy: return "torch-legacy";
    case CheckpointFormat::Safetensors: return "safetensors";
  }
  return "unknown";
}

CheckpointProgress jobProgress(JobContext& ctx, const char* stage) {
  return [&ctx, stage](double done, double total) {
    ctx.checkAbort();
    ctx.progress(done, total, stage);
  };
}

namespace {

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

}  // namespace

using ckpt::corrupt;

Checkpoint readCheckpoint(const std::string& path) { return readCheckpoint(path, nullptr); }

Checkpoint readCheckpoint(const std::string& path, const CheckpointProgress& progress) {
  if (path.empty()) invalidArgument("the checkpoint path is empty");
  ckpt::File file(path);
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
      return ckpt::readTorchZip(path, file, progress);
    }
    if (headLen >= 9 && head[8] == '{') return ckpt::readSafetensors(path, file, progress);
    if (head[0] == 0x80) return ckpt::readTorchLegacy(path, file, progress);
    if (endsWith(".safetensors")) return ckpt::readSafetensors(path, file, progress);
  } catch (const pickle::PickleError& e) {
    corrupt(path, e.what());
  }
  corrupt(path, "not a checkpoint: the file holds " + describeContent(head, headLen) +
                    " (expected a torch.save file, zip or legacy, or a safetensors file)");
}

}  // namespace bia
