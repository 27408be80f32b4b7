#include "atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "errors.h"

namespace bia {

[[noreturn]] void ioError(const std::string& action, const std::string& path, int err) {
  throw BiaError(ErrorCode::Io, "cannot " + action + " '" + path + "': " + std::strerror(err));
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; attempt < 100 && fd_ < 0; attempt++) {
    tmp_ = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) ioError("write", path, errno);
  }
  if (fd_ < 0) ioError("write", path, EEXIST);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      ioError("write", path_, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) ioError("write", path_, errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) ioError("write", path_, errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) ioError("write", path_, errno);
  committed_ = true;
}

}  // namespace bia
