// libFuzzer target: any bytes as a transform file (see targets.hpp). Built and run by `make fuzz`.
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vxfuzz::transform_one(data, size);
  return 0;
}
