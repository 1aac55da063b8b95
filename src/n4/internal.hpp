// Private parts of N4 shared by its translation units (src/n4/*.cpp): the B-spline control lattice
// sampled on a voxel grid (lattice.cpp), the histogram sharpening (sharpen.cpp) and the fit (fit.cpp).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <unsupported/Eigen/FFT>

#include "voxalign/core/parallel.hpp"
#include "voxalign/n4/n4.hpp"

namespace voxalign {
namespace n4_detail {

using Real = float; // ITK's N4 RealType: images and histogram arithmetic are single precision

constexpr int64_t kRowGrain = 32; // rows per parallel block

/// One axis of a control lattice sampled at the voxels of a grid: for voxel i the control points
/// base[i] .. base[i] + taps - 1 with weights w[i * taps + t]. A trivial axis (2D images' third
/// axis) has one control point and weight 1.
struct Axis {
  int64_t n = 1;
  int ncp = 1;
  int taps = 1;
  std::vector<int32_t> base;
  std::vector<double> w;
};

Axis trivial_axis();
/// Voxel i of n sits at parametric position spans * (i + offset) / (size - 1), as ITK maps grid
/// indices onto the lattice (offset != 0 when the grid is a crop of the one the lattice spans).
Axis make_axis(int64_t n, int ncp, int order, int64_t offset, int64_t size);
/// Per-voxel coefficients derived from an axis' weights: w^2 (the fit's denominator) or
/// w^3 / sum_t w^2 (its numerator; the point's sum of squared weights is the product over axes).
std::vector<double> fit_coefficients(const Axis& a, bool numerator);
/// One axis of the separable B-spline sums: coef per (voxel, tap) from [inner][n][outer] data to
/// [inner][ncp][outer] (see axis_sum in lattice.cpp).
void contract(const std::vector<double>& in, int64_t inner, int64_t outer, const Axis& ax,
              const std::vector<double>& coef, std::vector<double>& out);
/// The lattice summed over y and z: rows[(j, l)][cx] = sum_{cy, cz} wy wz phi, ready for the final
/// x expansion of row (j, l).
std::vector<double> collapse_yz(const std::vector<double>& phi, const Axis& ax, const Axis& ay, const Axis& az);

/// Field value at voxel i of a row from the collapsed row coefficients.
inline double expand_x(const Axis& ax, const double* row, int64_t i) {
  const double* w = &ax.w[static_cast<size_t>(i * ax.taps)];
  const double* c = row + ax.base[static_cast<size_t>(i)];
  double v = 0.0;
  for (int t = 0; t < ax.taps; ++t) v += w[t] * c[t];
  return v;
}

/// Refine a lattice (spans doubled on every axis with more than one control point), B-spline
/// subdivision as ITK's RefineControlPointLattice does it: new[l] = 2^-k sum_i C(k+1, l+k-2i) old[i].
std::vector<double> refine_lattice(const std::vector<double>& phi, std::array<int, 3>& ncp,
                                   const std::array<bool, 3>& active, int order);

/// ITK's SharpenImage, given the histogram: the intensity mapping E(u|v) over the bins.
std::vector<Real> sharpening_map(const std::vector<double>& hist, Real bin_min, Real slope, const N4Options& o,
                                Eigen::FFT<double>& fft);

/// Bin position of a value, ITK style: a value below bin_min (see first_voxel_quirk) maps to an
/// index past the end.
struct BinPos {
  uint64_t idx;
  Real frac;
};
inline BinPos bin_position(Real v, Real bin_min, Real slope) {
  const Real cidx = (v - bin_min) / slope;
  if (!(cidx >= 0)) return {std::numeric_limits<uint64_t>::max(), Real(1)};
  const Real fl = std::floor(cidx);
  return {static_cast<uint64_t>(fl), cidx - fl};
}

/// The voxels the fit uses, stored compactly: runs [i0, i1) of consecutive used voxels along x,
/// row by row (row r = j + ny * k), and their values in that order.
struct FitData {
  int64_t nx = 1, ny = 1, nz = 1;
  bool three_d = true;
  std::vector<int64_t> row_runs;             ///< rows + 1: first run of each row
  std::vector<std::array<int32_t, 2>> runs;  ///< [i0, i1) of each run
  std::vector<int64_t> run_offset;           ///< runs + 1: compact index of each run's first voxel
  Buffer<float> log_in;                      ///< log intensity of each used voxel
  Buffer<float> conf;                        ///< confidence weight of each used voxel (empty: all 1)
  int64_t rows() const { return ny * nz; }
  int64_t count() const { return static_cast<int64_t>(log_in.size()); }
};

struct FitOutput {
  std::vector<double> lattice; ///< control lattice of the log field (x fastest)
  std::array<int, 3> ncp{1, 1, 1};
};

/// The N4 iterations (ITK's GenerateData loop) on the used voxels of the fit grid.
FitOutput fit(const FitData& g, std::array<int, 3> ncp, const N4Options& o, N4Report& report);

} // namespace n4_detail
} // namespace voxalign
