#include "voxalign/core/file_read.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "voxalign/core/error.hpp"

namespace voxalign {

namespace {
// stat() rather than open(): opening a FIFO for reading blocks until a writer appears.
struct stat stat_regular(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    VX_CHECK(e != ENOENT, IoError, path, ": no such file");
    throw IoError(path + ": cannot open for reading (" + std::strerror(e) + ")");
  }
  VX_CHECK(!S_ISDIR(st.st_mode), IoError, path, ": is a directory, not a ", what);
  VX_CHECK(S_ISREG(st.st_mode), IoError, path, ": not a regular file (a pipe, socket or device); give a ", what,
           " on disk");
  return st;
}
} // namespace

void check_regular_file(const std::string& path, const std::string& what) { stat_regular(path, what); }

RegularFile::RegularFile(const std::string& path, const std::string& what, const std::string& shown) : shown_(shown) {
  stat_regular(path, what);
  // O_NONBLOCK: should the name now be a FIFO (replaced since the stat), opening must not block.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  const std::string who = shown == path ? path : shown + ": " + path;
  VX_CHECK(fd_ >= 0, IoError, who, ": cannot open for reading (", std::strerror(errno), ")");
  struct stat st {};
  // fstat on the descriptor: the file named may have been replaced since the stat above.
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw IoError(who + ": not a regular file (a pipe, socket or device); give a " + what + " on disk");
  }
  size_ = uint64_t(st.st_size);
}

RegularFile::~RegularFile() { ::close(fd_); }

void RegularFile::read_into(uint64_t off, uint64_t len, unsigned char* dst) const {
  uint64_t got = 0;
  while (got < len) {
    const ssize_t r = ::pread(fd_, dst + got, size_t(std::min<uint64_t>(len - got, 1u << 30)), off_t(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += uint64_t(r);
  }
  VX_CHECK(got == len, IoError, shown_, ": read error (the file changed or could not be read)");
}

std::vector<unsigned char> RegularFile::read(uint64_t off, uint64_t len) const {
  if (off >= size_) return {};
  len = std::min(len, size_ - off);
  std::vector<unsigned char> buf;
  try {
    buf.resize(size_t(len));
  } catch (const std::bad_alloc&) {
    throw IoError(shown_ + ": not enough memory to read " + std::to_string(len) + " bytes");
  }
  read_into(off, len, buf.data());
  return buf;
}

std::vector<unsigned char> read_file_bytes(const std::string& path, const std::string& what, uint64_t max_bytes) {
  const RegularFile f(path, what, path);
  VX_CHECK(f.size() <= max_bytes, IoError, path, ": ", f.size(), " bytes is too large for a ", what, " (at most ",
           max_bytes, ")");
  return f.read(0, f.size());
}

} // namespace voxalign
