#include "voxalign/spline/modes.hpp"

namespace voxalign {

const NameTable<Mode>& mode_names() {
  static const NameTable<Mode> t{"boundary mode", {{Mode::Itk, "itk"}, {Mode::GridConstant, "grid-constant"},
      {Mode::Constant, "constant"}, {Mode::Nearest, "nearest"}, {Mode::Mirror, "mirror"}, {Mode::Reflect, "reflect"},
      {Mode::Reflect, "grid-mirror", true}, {Mode::Wrap, "wrap"}, {Mode::GridWrap, "grid-wrap"}}};
  return t;
}

Mode parse_mode(std::string_view s) { return mode_names().parse(s); }
std::string mode_name(Mode m) { return mode_names().name(m); }

const NameTable<int>& order_names() {
  static const NameTable<int> t{"interpolation", {{0, "0"}, {1, "1"}, {2, "2"}, {3, "3"}, {4, "4"}, {5, "5"}, {6, "6"},
      {7, "7"}, {kKeys, "keys"}}};
  return t;
}

int parse_order(std::string_view s) { return order_names().parse(s); }
std::string order_name(int order) { return order_names().name(order); }

} // namespace voxalign
