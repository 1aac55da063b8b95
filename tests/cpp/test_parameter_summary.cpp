// parameter_summary (register/register.hpp): the parameters of a registration for people, group by
// group with units -- translations in mm, rotations in degrees (stored in radians), scales and zooms
// as factors, shears as stored -- in 3D and 2D, with no "-0.000".
#include <gtest/gtest.h>

#include <cmath>

#include "voxalign/core/error.hpp"
#include "voxalign/register/register.hpp"

using namespace voxalign;

namespace {
RegisterResult result(int ndim, const std::string& transform, std::vector<double> theta) {
  RegisterResult r;
  r.model.ndim = ndim;
  r.model.groups = transform_groups(transform_names().parse(transform));
  r.parameters = std::move(theta);
  r.names = r.model.names();
  return r;
}
} // namespace

TEST(Register, ParameterSummaryRigidInMillimetresAndDegrees) {
  const double deg = M_PI / 180.0;
  EXPECT_EQ(parameter_summary(result(3, "rigid", {1.5, -2.25, 0.0001, 2 * deg, -0.5 * deg, -1e-9})),
            "translation (1.500, -2.250, 0.000) mm, rotation (2.000, -0.500, 0.000) deg");
}

TEST(Register, ParameterSummaryAffineHasZoomAndShear) {
  const std::vector<double> theta{0, 0, 0, 0, 0, 0, 0.1, -0.05, 0, 0.01, 0, -0.002};
  EXPECT_EQ(parameter_summary(result(3, "affine", theta)),
            "translation (0.000, 0.000, 0.000) mm, rotation (0.000, 0.000, 0.000) deg, zoom (1.10000, 0.95000, "
            "1.00000), shear (0.01000, 0.00000, -0.00200)");
}

TEST(Register, ParameterSummarySimilarity2D) {
  EXPECT_EQ(parameter_summary(result(2, "similarity", {1, 2, M_PI / 2, 0.25})),
            "translation (1.000, 2.000) mm, rotation 90.000 deg, scale 1.25000");
}

TEST(Register, ParameterSummaryRefusesTooFewParameters) {
  EXPECT_THROW(parameter_summary(result(3, "rigid", {1, 2, 3})), InvalidArgument);
}
