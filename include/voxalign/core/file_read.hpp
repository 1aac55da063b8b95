// Reading whole files safely: only regular files (a FIFO would block, a device would never end), opened
// once, with a size limit for files that are small by nature (transform files).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace voxalign {

/// Throw IoError naming `path` unless it is an existing regular file (after following links).
/// `what` names the kind of file in the message ("NIfTI file", "transform file").
void check_regular_file(const std::string& path, const std::string& what);

/// The whole content of a regular file, opened once. Files larger than max_bytes are refused with an
/// IoError naming the file and the limit.
std::vector<unsigned char> read_file_bytes(const std::string& path, const std::string& what,
                                           uint64_t max_bytes = UINT64_MAX);

} // namespace voxalign
