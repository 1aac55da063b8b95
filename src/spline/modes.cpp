#include "voxalign/spline/modes.hpp"

#include "voxalign/core/error.hpp"

namespace voxalign {

Mode parse_mode(std::string_view s) {
  if (s == "mirror") return Mode::Mirror;
  if (s == "reflect" || s == "grid-mirror") return Mode::Reflect;
  if (s == "nearest") return Mode::Nearest;
  if (s == "constant") return Mode::Constant;
  if (s == "grid-constant") return Mode::GridConstant;
  if (s == "wrap") return Mode::Wrap;
  if (s == "grid-wrap") return Mode::GridWrap;
  if (s == "itk") return Mode::Itk;
  throw InvalidArgument("unknown boundary mode '" + std::string(s) +
                        "' (use mirror, reflect, grid-mirror, nearest, constant, grid-constant, wrap grid-wrap or itk)");
}

std::string mode_name(Mode m) {
  switch (m) {
  case Mode::Mirror: return "mirror";
  case Mode::Reflect: return "reflect";
  case Mode::Nearest: return "nearest";
  case Mode::Constant: return "constant";
  case Mode::GridConstant: return "grid-constant";
  case Mode::Wrap: return "wrap";
  case Mode::GridWrap: return "grid-wrap";
  case Mode::Itk: return "itk";
  }
  return "?";
}

int parse_order(std::string_view s) {
  if (s == "keys") return kKeys;
  if (s.size() == 1 && s[0] >= '0' && s[0] <= '7') return s[0] - '0';
  throw InvalidArgument("unknown interpolation '" + std::string(s) + "' (use a B-spline degree 0..7 or keys)");
}

std::string order_name(int order) { return order == kKeys ? "keys" : std::to_string(order); }

} // namespace voxalign
