// Internal: the pieces of the SyN driver (src/register/syn.cpp) that src/register/syn_metric.cpp holds.
// Fields are Image<float> with dims[3] = 3 (RAS mm, component-major frames) on a level grid.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "voxalign/register/syn.hpp"
#include "voxalign/spline/prefilter.hpp"
#include <Eigen/Dense>

namespace voxalign::syn {

constexpr int64_t kVoxGrain = 4096; // voxels per block
constexpr int64_t kLineGrain = 16;  // lines per block

/// One pyramid level: the virtual grid (the fixed level grid) and both images' spline coefficients.
struct LevelImages {
  Geometry grid;                              ///< fixed level grid (dims[3] = 1)
  Coefficients<float> cf, cm;
  Mat4 fixed_world_to_voxel = Mat4::Identity();  ///< world -> fixed level voxel
  Mat4 moving_world_to_voxel = Mat4::Identity(); ///< world -> moving level voxel
  double varf = 1, varm = 1; ///< variances of the level images (scale of lncc's regularisation)
  double fmin = 0, fmax = 1, mmin = 0, mmax = 1; ///< ranges of the level images (mi's histogram axes)
  std::vector<uint8_t> mask; ///< 1: the grid voxel counts in the metric; empty: every voxel
  mutable std::vector<std::vector<double>> scratch; ///< lncc's window sums, reused by the level's iterations
};

double variance(const Image<float>& im);

/// The metric of F(x + u1) against M(A(x + u2)) on L.grid (over L.mask's voxels) and its gradients
/// w.r.t. u1, u2 (when not null).
double level_metric(const LevelImages& L, const Mat4& affine, const Image<float>& u1, const Image<float>& u2,
                    const SynOptions& o, Image<float>* g1, Image<float>* g2);

/// Gaussian smoothing of each component (sigma in voxels; <= 0: none).
void smooth_field(Image<float>& u, double sigma_vox);
/// u <- delta + u o (id + delta) (delta on u's grid, mm).
void compose_update(Image<float>& u, const Image<float>& delta);
/// Voxel indices (i, j, k) of linear index q, advanced voxel by voxel: no divisions inside loops.
struct VoxelIndex {
  int64_t i, j, k;
  const int64_t* n;
  VoxelIndex(int64_t q, const int64_t* dims) : i(q % dims[0]), j((q / dims[0]) % dims[1]), k(q / (dims[0] * dims[1])), n(dims) {}
  Eigen::Vector3d point() const { return {double(i), double(j), double(k)}; }
  void next() {
    if (++i == n[0]) {
      i = 0;
      if (++j == n[1]) j = 0, ++k;
    }
  }
};

/// Trilinear value of a field (n: its dims, each >= 2; component-major) at voxel point p, edge values outside.
inline Eigen::Vector3d sample_field(const float* u, const int64_t* n, const Eigen::Vector3d& p) {
  int64_t i0[3];
  double w[3];
  for (int d = 0; d < 3; ++d) {
    const double x = std::clamp(p[d], 0.0, double(n[d] - 1)); // edge values outside (mode 'nearest')
    i0[d] = std::min<int64_t>(int64_t(std::floor(x)), std::max<int64_t>(n[d] - 2, 0));
    w[d] = n[d] > 1 ? x - double(i0[d]) : 0.0;
  }
  const int64_t s1 = n[0], s2 = n[0] * n[1], N = s2 * n[2];
  const float* base = u + i0[0] + s1 * i0[1] + s2 * i0[2];
  const int64_t off[8] = {0, 1, s1, s1 + 1, s2, s2 + 1, s2 + s1, s2 + s1 + 1};
  double wt[8];
  for (int c = 0; c < 8; ++c)
    wt[c] = ((c & 1) ? w[0] : 1 - w[0]) * (((c >> 1) & 1) ? w[1] : 1 - w[1]) * (((c >> 2) & 1) ? w[2] : 1 - w[2]);
  Eigen::Vector3d out;
  for (int d = 0; d < 3; ++d) {
    double acc = 0;
    for (int c = 0; c < 8; ++c) acc += wt[c] * base[off[c] + d * N];
    out[d] = acc;
  }
  return out;
}
/// The field u (on its own grid) on the grid `to`, trilinear, edge values outside.
Image<float> resample_field(const Image<float>& u, const Geometry& to);
/// Largest displacement of u in voxels of its grid.
double max_voxel_norm(const Image<float>& u);

} // namespace voxalign::syn
