#include "checkpoint_io.h"

#include <sys/stat.h>

#include <cerrno>

#include "atomic_file.h"
#include "errors.h"

namespace bia::ckpt {

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw BiaError(ErrorCode::Checkpoint, "cannot read checkpoint '" + path + "': " + what);
}

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

File::File(const std::string& path) : path_(path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) ioError("open", path, errno);
  if (S_ISDIR(st.st_mode)) throw BiaError(ErrorCode::Io, "cannot open '" + path + "': it is a directory");
  // Not a FIFO or a device: opening one could block forever.
  if (!S_ISREG(st.st_mode)) throw BiaError(ErrorCode::Io, "cannot open '" + path + "': not a regular file");
  fp_ = std::fopen(path.c_str(), "rb");
  if (!fp_) ioError("open", path, errno);
  struct stat opened;
  if (::fstat(fileno(fp_), &opened) != 0) ioError("read", path, errno);
  size_ = static_cast<uint64_t>(opened.st_size);
}

File::~File() {
  if (fp_) std::fclose(fp_);
}

void File::readAt(uint64_t offset, void* dst, size_t n) const {
  if (n == 0) return;
  if (offset > size_ || n > size_ - offset) corrupt(path_, "truncated: needed bytes " + std::to_string(offset) + ".." + std::to_string(offset + n) + " of a " + std::to_string(size_) + "-byte file");
  if (::fseeko(fp_, static_cast<off_t>(offset), SEEK_SET) != 0) ioError("read", path_, errno);
  if (std::fread(dst, 1, n, fp_) != n) {
    if (std::ferror(fp_)) ioError("read", path_, errno);
    corrupt(path_, "the file ended early (it changed while being read?)");
  }
}

}  // namespace bia::ckpt
