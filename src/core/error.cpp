#include "voxalign/core/error.hpp"

#include <new>

namespace voxalign {

void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const IoError& e) {
    throw IoError(context + ": " + e.what());
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(context + ": " + e.what());
  } catch (const Error& e) {
    throw Error(context + ": " + e.what());
  } catch (const std::bad_alloc&) {
    throw Error(context + ": not enough memory");
  }
}

} // namespace voxalign
