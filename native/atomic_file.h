// Writing files all or nothing: the bytes go to a temporary file next to the target, which is
// renamed into place once complete (fsync'ed). A failure leaves no partial file behind.
// Errors of the system are BIA_IO_ERROR ("cannot write '<path>': <reason>").
#pragma once

#include <cstddef>
#include <string>

namespace bia {

// BIA_IO_ERROR "cannot <action> '<path>': <strerror(err)>".
[[noreturn]] void ioError(const std::string& action, const std::string& path, int err);

// A temporary file next to the target, removed unless commit() renamed it into place.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // All n bytes (retrying short writes and EINTR).
  void write(const void* data, size_t n);
  void commit();

 private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace bia
