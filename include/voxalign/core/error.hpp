// One exception type (with a few subclasses) for the whole library, and a check macro.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace voxalign {

/// Base of every error voxalign throws. what() is one line meant for a user.
class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};
/// A file could not be read or written, or its content is not what it should be.
class IoError : public Error {
public:
  using Error::Error;
};
/// A caller passed an argument that makes no sense (shape, option value ...).
class InvalidArgument : public Error {
public:
  using Error::Error;
};

/// Prefix the message of an Error with context ("while reading x.nii.gz: ...") and rethrow the same type;
/// std::bad_alloc becomes an Error "context: not enough memory".
[[noreturn]] void rethrow_with_context(const std::string& context);

namespace detail {
template <class... A> std::string concat(const A&... a) {
  std::ostringstream s;
  (s << ... << a);
  return s.str();
}
} // namespace detail

} // namespace voxalign

/// VX_CHECK(cond, ExceptionType, message parts...): throw ExceptionType(message) when cond is false.
#define VX_CHECK(cond, Type, ...)                                                                  \
  do {                                                                                             \
    if (!(cond)) throw Type(::voxalign::detail::concat(__VA_ARGS__));                              \
  } while (0)
