#include "voxalign/core/file_read.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

std::vector<unsigned char> read_file_bytes(const std::string& path, const std::string& what, uint64_t max_bytes) {
  stat_regular(path, what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  VX_CHECK(fd >= 0, IoError, path, ": cannot open for reading (", std::strerror(errno), ")");
  struct stat st {};
  // fstat on the descriptor: the file named may have been replaced since the stat above.
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(path + ": not a regular file (a pipe, socket or device); give a " + what + " on disk");
  }
  if (uint64_t(st.st_size) > max_bytes) {
    ::close(fd);
    throw IoError(path + ": " + std::to_string(st.st_size) + " bytes is too large for a " + what + " (at most " +
                  std::to_string(max_bytes) + ")");
  }
  std::vector<unsigned char> buf(size_t(st.st_size));
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t r = ::read(fd, buf.data() + got, buf.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += size_t(r);
  }
  ::close(fd);
  VX_CHECK(got == buf.size(), IoError, path, ": read error (the file changed or could not be read)");
  return buf;
}

} // namespace voxalign
