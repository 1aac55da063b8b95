// compute_dvars and the confounds TSV (realign/confounds.cpp) on a series small enough to work out by
// hand: nipype's ComputeDVARS formulas (median scaled to 1000, "lower" percentiles, Yule-Walker AR(1)),
// the voxels that never change dropped, the automatic mask, and the TSV's columns and n/a's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "voxalign/core/error.hpp"
#include "voxalign/realign/realign.hpp"

using namespace voxalign;

namespace {
// nvox voxels along i, T frames; values[v][t].
Image<float> series(const std::vector<std::vector<float>>& values) {
  Geometry g;
  g.ndim = 4;
  g.dims = {int64_t(values.size()), 1, 1, int64_t(values[0].size())};
  Image<float> s(g, no_init);
  for (size_t v = 0; v < values.size(); ++v)
    for (size_t t = 0; t < values[v].size(); ++t) s.data()[t * values.size() + v] = values[v][t];
  return s;
}
} // namespace

TEST(Dvars, TwoVoxelsByHand) {
  // v0 = 1..5, v1 = 2 v0, v2 constant (dropped: zero robust SD). Masked values' median 4 (v2 = 4):
  // scale 250. Lower percentiles of 5 values: sorted[1], sorted[3]: IQR 2 and 4. ar1 = 4/10 for both.
  const Image<float> s = series({{1, 2, 3, 4, 5}, {2, 4, 6, 8, 10}, {4, 4, 4, 4, 4}});
  Geometry g3 = s.geometry();
  g3.ndim = 3, g3.dims[3] = 1;
  Image<float> mask(g3, 1.0f);
  const Dvars d = compute_dvars(s, &mask);
  EXPECT_EQ(d.voxels, 2);
  const double dv = std::sqrt((1.0 + 4.0) / 2.0) * 250.0;       // differences 1 and 2 at every step
  const double sdmean = std::sqrt(2 * (1 - 0.4)) * (2.0 + 4.0) / 2.0 / 1.349 * 250.0;
  ASSERT_EQ(d.dvars.size(), 5u);
  EXPECT_EQ(d.dvars[0], 0.0);
  for (int t = 1; t < 5; ++t) {
    EXPECT_NEAR(d.dvars[size_t(t)], dv, 1e-9 * dv);
    EXPECT_NEAR(d.std_dvars[size_t(t)], dv / sdmean, 1e-12);
  }
}

TEST(Dvars, AutoMaskIsSpmAnalysisThreshold) {
  // mean image 0, 10, 100, 100: spm_global = mean of the voxels above 52.5 / 8 = 100; keep > 80.
  Geometry g;
  g.dims = {4, 1, 1, 1};
  Image<float> m(g, no_init);
  const float v[4] = {0, 10, 100, 100};
  std::copy(v, v + 4, m.data());
  const Image<float> k = dvars_auto_mask(m);
  EXPECT_EQ(k.data()[0], 0.0f);
  EXPECT_EQ(k.data()[1], 0.0f);
  EXPECT_EQ(k.data()[2], 1.0f);
  EXPECT_EQ(k.data()[3], 1.0f);
}

TEST(Dvars, ConstantSeriesIsZeroNotAnError) {
  const Image<float> z = series({{0, 0, 0}, {0, 0, 0}});
  const Dvars d = compute_dvars(z);
  EXPECT_EQ(d.voxels, 0);
  for (double x : d.dvars) EXPECT_EQ(x, 0.0);
}

TEST(Confounds, TsvColumnsDerivativesAndNa) {
  RealignResult r;
  r.fsl = {{0.0, 0.0, 0.0, 1.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 3.0, 0.0, 0.0}}; // trans_x 1 then 3
  r.fd = {0, 2}, r.rmsd = {0, 2}, r.dvars = {0, 5}, r.std_dvars = {0, 1.5};
  std::istringstream in(bids_confounds_tsv(r));
  std::string head, row0, row1;
  std::getline(in, head), std::getline(in, row0), std::getline(in, row1);
  EXPECT_EQ(head.rfind("trans_x\ttrans_x_derivative1\ttrans_x_power2\ttrans_x_derivative1_power2\ttrans_y\t", 0), 0u);
  EXPECT_NE(head.find("rot_z_derivative1_power2\tframewise_displacement\trmsd\tdvars\tstd_dvars"), std::string::npos);
  EXPECT_EQ(row0.rfind("1\tn/a\t1\tn/a\t", 0), 0u);
  EXPECT_EQ(row1.rfind("3\t2\t9\t4\t", 0), 0u);
  EXPECT_NE(row0.find("\tn/a\tn/a\tn/a\tn/a"), std::string::npos);
  EXPECT_NE(row1.find("\t2\t2\t5\t1.5"), std::string::npos);
  r.dvars.clear(), r.std_dvars.clear(); // not computed: the columns are left out
  EXPECT_EQ(bids_confounds_tsv(r).find("dvars"), std::string::npos);
}

TEST(Dvars, MaskedSeriesGivesTheSameAsTheSeries) {
  // dvars_of_masked (what the streaming CLI keeps) against compute_dvars on the whole series, and the
  // median scale (selected in place) against std::nth_element on a copy: negative values, ties, odd and
  // even numbers of values; -v flips the median's sign, not the magnitudes.
  for (const int64_t T : {6, 7}) {
    std::vector<std::vector<float>> rows;
    uint32_t state = 12345;
    for (int v = 0; v < 9; ++v) {
      std::vector<float> r;
      for (int64_t t = 0; t < T; ++t) {
        state = state * 1664525u + 1013904223u;
        r.push_back(float(int(state >> 20) % 401) * 0.5f - 100.0f); // ties across voxels, none within one
      }
      rows.push_back(r);
    }
    const Image<float> s = series(rows);
    Geometry g3 = s.geometry();
    g3.dims[3] = 1;
    Image<float> mask(g3, 1.0f);
    mask.data()[2] = 0.0f;
    const std::vector<int64_t> vox = dvars_voxels(mask, false);
    ASSERT_EQ(vox.size(), 8u);
    std::vector<float> x;
    for (int64_t v : vox)
      for (int64_t t = 0; t < T; ++t) x.push_back(s.data()[t * 9 + v]);
    const Dvars a = compute_dvars(s, &mask), b = dvars_of_masked(x, 8, T);
    EXPECT_EQ(a.dvars, b.dvars);
    EXPECT_EQ(a.std_dvars, b.std_dvars);
    // The scale: dvars[t] = RMS(differences) * 1000 / |median|.
    std::vector<float> c = x;
    const size_t h = c.size() / 2;
    std::nth_element(c.begin(), c.begin() + std::ptrdiff_t(h), c.end());
    double median = c[h];
    if (c.size() % 2 == 0) median = 0.5 * (median + double(*std::max_element(c.begin(), c.begin() + std::ptrdiff_t(h))));
    double ss = 0;
    for (int64_t v = 0; v < 8; ++v) {
      const double d = double(x[size_t(v * T + 1)]) - double(x[size_t(v * T)]);
      ss += d * d;
    }
    ASSERT_EQ(b.voxels, 8); // every kept voxel varies here
    EXPECT_DOUBLE_EQ(b.dvars[1], std::sqrt(ss / 8.0) * std::abs(1000.0 / median)) << "T " << T;
  }
  EXPECT_THROW(dvars_voxels(Image<float>(Geometry(), 0.0f), false), InvalidArgument);
}
