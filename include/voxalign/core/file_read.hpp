// Reading files safely: only regular files (a FIFO would block, a device would never end), each
// opened once, with a size limit for files that are small by nature (transform files).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace voxalign {

/// Throw IoError naming `path` unless it is an existing regular file (after following links).
/// `what` names the kind of file in the message ("NIfTI file", "transform file").
void check_regular_file(const std::string& path, const std::string& what);

/// A regular file, checked (check_regular_file) and opened once; reads by offset. Errors name
/// `shown` (the name the user gave: for a .hdr/.img pair, the one on the command line).
class RegularFile {
public:
  RegularFile(const std::string& path, const std::string& what, const std::string& shown);
  ~RegularFile();
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;
  uint64_t size() const { return size_; }
  /// Bytes [off, off + len) clipped to the file's end.
  std::vector<unsigned char> read(uint64_t off, uint64_t len) const;
  /// Exactly len bytes at off into dst (IoError when the file ends first).
  void read_into(uint64_t off, uint64_t len, unsigned char* dst) const;

private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string shown_;
};

/// The whole content of a regular file, opened once. Files larger than max_bytes are refused with an
/// IoError naming the file and the limit.
std::vector<unsigned char> read_file_bytes(const std::string& path, const std::string& what,
                                           uint64_t max_bytes = UINT64_MAX);

} // namespace voxalign
