// NameTable: every enum's names round-trip, parse in any case, and an unknown name's error lists the choices.
#include <gtest/gtest.h>

#include "voxalign/core/error.hpp"
#include "voxalign/core/names.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/register/register.hpp"
#include "voxalign/spline/modes.hpp"
#include "voxalign/warp/warp.hpp"

using namespace voxalign;

namespace {

template <class T> void expect_round_trip(const NameTable<T>& t) {
  ASSERT_FALSE(t.names().empty());
  for (const std::string& n : t.names()) {
    EXPECT_EQ(t.name(t.parse(n)), n);
    std::string upper = n;
    for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(t.parse(upper), t.parse(n)) << upper;
  }
}

template <class T> void expect_unknown_lists_choices(const NameTable<T>& t) {
  try {
    t.parse("no-such-name");
    FAIL() << "accepted an unknown " << t.what();
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("unknown " + std::string(t.what()) + " 'no-such-name'"), std::string::npos) << m;
    EXPECT_NE(m.find("(choose from " + t.choices() + ")"), std::string::npos) << m;
    for (const std::string& n : t.names()) EXPECT_NE(m.find(n), std::string::npos) << m;
  }
}

} // namespace

TEST(Names, EveryTableRoundTripsInAnyCase) {
  expect_round_trip(mode_names());
  expect_round_trip(order_names());
  expect_round_trip(dtype_names());
  expect_round_trip(transform_names());
  expect_round_trip(metric_names());
  expect_round_trip(optimizer_names());
  expect_round_trip(init_names());
  expect_round_trip(field_unit_names());
}

TEST(Names, UnknownNameErrorListsTheChoices) {
  expect_unknown_lists_choices(mode_names());
  expect_unknown_lists_choices(order_names());
  expect_unknown_lists_choices(dtype_names());
  expect_unknown_lists_choices(metric_names());
  expect_unknown_lists_choices(field_unit_names());
}

TEST(Names, AliasesParseButAreNotListed) {
  EXPECT_EQ(parse_mode("grid-mirror"), Mode::Reflect);
  EXPECT_EQ(mode_name(Mode::Reflect), "reflect");
  EXPECT_EQ(parse_dtype("DOUBLE"), DataType::Float64);
  EXPECT_EQ(dtype_name(DataType::Float64), "float64");
  for (const std::string& n : mode_names().names()) EXPECT_NE(n, "grid-mirror");
  for (const std::string& n : dtype_names().names()) EXPECT_NE(n, "double");
}

TEST(Names, KnownSpellings) {
  EXPECT_EQ(parse_mode("Grid-Constant"), Mode::GridConstant);
  EXPECT_EQ(parse_order("KEYS"), kKeys);
  EXPECT_EQ(order_name(5), "5");
  EXPECT_EQ(metric_names().parse("MI"), Metric::MI);
  EXPECT_EQ(optimizer_names().name(Optimizer::GaussNewton), "gn");
  EXPECT_EQ(transform_names().parse("Affine"), TransformType::Affine);
  EXPECT_EQ(field_unit_names().parse("MM"), FieldUnits::Mm);
  EXPECT_FALSE(metric_names().find("ms").has_value());
}
