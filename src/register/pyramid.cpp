// Registration pyramid: separable Gaussian smoothing and integer shrinking (docs/register.md).
#include <algorithm>
#include <cmath>
#include <vector>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/register/register.hpp"

namespace voxalign::reg {
namespace {

/// Apply a 1D symmetric kernel (taps k[0..r], k[-q] = k[q]) along `axis` of a contiguous 3D array,
/// 'nearest' boundary, writing into `out` (which may not alias `in`). Lines are read L at a time into
/// a padded buffer; along axes 1 and 2 the L lines are neighbours along axis 0, so every read fetches
/// whole cache lines. Each output is k0 p0 + sum_t k_t (p_t + p_-t) in that order: the same sums, so
/// the same values, whichever way the lines are grouped.
void convolve_axis(const float* in, float* out, const int64_t* dims, int axis, const std::vector<double>& k) {
  const int64_t n = dims[axis];
  const int r = int(k.size()) - 1;
  constexpr int64_t L = 16;
  const int64_t lanes = axis == 0 ? dims[1] * dims[2] : dims[0]; // per plane (axes 1, 2) or in all (axis 0)
  const int64_t planes = axis == 0 ? 1 : axis == 1 ? dims[2] : dims[1];
  const int64_t lane_stride = axis == 0 ? n : 1;
  const int64_t stride = axis == 0 ? 1 : axis == 1 ? dims[0] : dims[0] * dims[1];
  const int64_t groups = (lanes + L - 1) / L, padded = n + 2 * r;
  parallel_for(planes * groups, 4, [&](int64_t b, int64_t e) {
    std::vector<double> buf(static_cast<size_t>(padded * L));
    for (int64_t job = b; job < e; ++job) {
      const int64_t p = job / groups, i0 = (job % groups) * L, nl = std::min(L, lanes - i0);
      const int64_t base = axis == 0 ? i0 * n : axis == 1 ? i0 + dims[0] * dims[1] * p : i0 + dims[0] * p;
      for (int64_t q = 0; q < padded; ++q) {
        const float* row = in + base + std::clamp<int64_t>(q - r, 0, n - 1) * stride;
        double* bq = buf.data() + q * L;
        for (int64_t l = 0; l < nl; ++l) bq[l] = row[l * lane_stride];
      }
      for (int64_t q = 0; q < n; ++q) {
        const double* c = buf.data() + (q + r) * L;
        double s[L];
        for (int64_t l = 0; l < L; ++l) s[l] = k[0] * c[l];
        for (int t = 1; t <= r; ++t) {
          const double kt = k[static_cast<size_t>(t)];
          const double *a = c + t * L, *z = c - t * L;
          for (int64_t l = 0; l < L; ++l) s[l] += kt * (a[l] + z[l]);
        }
        float* o = out + base + q * stride;
        for (int64_t l = 0; l < nl; ++l) o[l * lane_stride] = float(s[l]);
      }
    }
  });
}

} // namespace

Image<float> gaussian_smooth(const Image<float>& in, const double sigma_vox[3]) {
  const Geometry& g = in.geometry();
  VX_CHECK(g.dims[3] == 1, InvalidArgument, "gaussian_smooth: 3D images only");
  Image<float> a = in, tmp(g, no_init);
  for (int axis = 0; axis < 3; ++axis) {
    const double s = sigma_vox[axis];
    if (!(s > 0.0) || g.dims[axis] == 1) continue;
    const int r = std::max(1, int(std::ceil(4.0 * s)));
    std::vector<double> k(static_cast<size_t>(r + 1));
    double sum = 0;
    for (int t = 0; t <= r; ++t) {
      k[static_cast<size_t>(t)] = std::exp(-0.5 * t * t / (s * s));
      sum += t == 0 ? k[0] : 2 * k[static_cast<size_t>(t)];
    }
    for (double& v : k) v /= sum;
    convolve_axis(a.data(), tmp.data(), g.dims.data(), axis, k);
    std::swap(a, tmp);
  }
  return a;
}

Image<float> shrink_image(const Image<float>& in, int factor) {
  VX_CHECK(factor >= 1, InvalidArgument, "shrink factor must be >= 1, got ", factor);
  const Geometry& g = in.geometry();
  if (factor == 1) return in;
  Geometry o = g;
  Mat4 S = Mat4::Identity();
  int f[3];
  for (int d = 0; d < 3; ++d) {
    // An axis that would keep fewer than two samples is not shrunk (so a 3D image stays 3D).
    f[d] = g.dims[d] < 2 * factor ? 1 : factor;
    o.dims[d] = std::max<int64_t>(1, g.dims[d] / f[d]);
    S(d, d) = f[d];
    S(d, 3) = 0.5 * (f[d] - 1);
  }
  o.affine = g.affine * S;
  Image<float> out(o, no_init);
  const int64_t nx = g.dims[0], ny = g.dims[1], nz = g.dims[2];
  const float* src = in.data();
  float* dst = out.data();
  // Linear interpolation at s*i + (s-1)/2: exact voxels for odd factors, 2-tap means for even ones.
  auto taps = [](int64_t i, int fd, int64_t n, int64_t* idx, double* w) {
    const double x = double(fd) * double(i) + 0.5 * (fd - 1);
    int64_t i0 = int64_t(std::floor(x));
    const double t = x - double(i0);
    idx[0] = std::min(i0, n - 1);
    idx[1] = std::min(i0 + 1, n - 1);
    w[0] = 1.0 - t;
    w[1] = t;
  };
  parallel_for(o.dims[2] * o.dims[1], 16, [&](int64_t b, int64_t e) {
    for (int64_t jk = b; jk < e; ++jk) {
      const int64_t j = jk % o.dims[1], k = jk / o.dims[1];
      int64_t jj[2], kk[2];
      double wj[2], wk[2];
      taps(j, f[1], ny, jj, wj);
      taps(k, f[2], nz, kk, wk);
      for (int64_t i = 0; i < o.dims[0]; ++i) {
        int64_t ii[2];
        double wi[2];
        taps(i, f[0], nx, ii, wi);
        double s = 0;
        for (int c = 0; c < 2; ++c)
          for (int bq = 0; bq < 2; ++bq)
            for (int a = 0; a < 2; ++a) {
              const double w = wk[c] * wj[bq] * wi[a];
              if (w != 0.0) s += w * src[ii[a] + nx * (jj[bq] + ny * kk[c])];
            }
        dst[i + o.dims[0] * (j + o.dims[1] * k)] = float(s);
      }
    }
  });
  return out;
}

Image<float> smooth_shrink(const Image<float>& in, const double sigma_vox[3], int factor) {
  VX_CHECK(factor >= 1, InvalidArgument, "shrink factor must be >= 1, got ", factor);
  const Geometry& g = in.geometry();
  VX_CHECK(g.dims[3] == 1, InvalidArgument, "smooth_shrink: 3D images only");
  // One pass per axis that filters and decimates at once: output sample i along an axis reads the
  // input around position f i + (f - 1) / 2 with the weights of "Gaussian (sampled at integer
  // offsets, 'nearest' edges), then linear interpolation at that position" -- the same numbers as
  // gaussian_smooth followed by shrink_image, at a fraction of the cost.
  Buffer<float> cur, next;
  const float* src = in.data(); // the input until the first pass has run
  int64_t dims[3] = {g.dims[0], g.dims[1], g.dims[2]};
  Mat4 S = Mat4::Identity();
  for (int axis = 0; axis < 3; ++axis) {
    const int64_t n = dims[axis];
    const int f = n < 2 * factor ? 1 : factor; // axes that would keep < 2 samples are kept (as shrink_image)
    const double sg = n == 1 ? 0.0 : sigma_vox[axis];
    S(axis, axis) = f;
    S(axis, 3) = 0.5 * (f - 1);
    if (f == 1 && !(sg > 0)) continue;
    std::vector<double> gk{1.0}; // Gaussian at offsets -r..r
    int r = 0;
    if (sg > 0) {
      r = std::max(1, int(std::ceil(4.0 * sg)));
      gk.assign(static_cast<size_t>(2 * r + 1), 0.0);
      double sum = 0;
      for (int t = -r; t <= r; ++t) sum += gk[static_cast<size_t>(t + r)] = std::exp(-0.5 * t * t / (sg * sg));
      for (double& v : gk) v /= sum;
    }
    const double frac = (f % 2 == 0) ? 0.5 : 0.0; // position f i + (f-1)/2 = base + frac
    std::vector<double> w(static_cast<size_t>(2 * r + 2), 0.0); // taps at offsets -r .. r+1 from base
    for (int t = -r; t <= r; ++t) {
      w[static_cast<size_t>(t + r)] += (1.0 - frac) * gk[static_cast<size_t>(t + r)];
      w[static_cast<size_t>(t + r + 1)] += frac * gk[static_cast<size_t>(t + r)];
    }
    const int64_t m = std::max<int64_t>(1, n / f);
    int64_t od[3] = {dims[0], dims[1], dims[2]};
    od[axis] = m;
    next.resize(static_cast<size_t>(od[0] * od[1] * od[2]));
    float* dst = next.data();
    const int T = 2 * r + 2; // taps per output: offsets -r .. r+1 from base
    const int64_t padded = n + 2 * r + 2;
    // Lines are read into a buffer padded by edge copies ('nearest'), L lines at a time: for axes
    // 1 and 2 the L lines are neighbours along axis 0, so every read fetches whole cache lines
    // and the tap loop runs over the L lanes.
    constexpr int64_t L = 16;
    // Lanes: rows (axis 0) or neighbours along axis 0 (axes 1, 2); lane strides in and out.
    const int64_t lanes = axis == 0 ? dims[1] * dims[2] : dims[0];
    const int64_t lin = axis == 0 ? n : 1, lout = axis == 0 ? m : 1;
    const int64_t planes = axis == 0 ? 1 : axis == 1 ? dims[2] : dims[1];
    const int64_t groups = (lanes + L - 1) / L;
    parallel_for(planes * groups, 4, [&](int64_t b, int64_t e) {
      std::vector<double> buf(static_cast<size_t>(padded * L));
      for (int64_t job = b; job < e; ++job) {
        const int64_t p = job / groups, i0 = (job % groups) * L, nl = std::min(L, lanes - i0);
        int64_t ib, ob, is, os; // start and stride along the axis, input and output
        if (axis == 0) ib = i0 * n, ob = i0 * m, is = 1, os = 1;
        else if (axis == 1) ib = i0 + dims[0] * dims[1] * p, ob = i0 + od[0] * od[1] * p, is = dims[0], os = od[0];
        else ib = i0 + dims[0] * p, ob = i0 + od[0] * p, is = dims[0] * dims[1], os = od[0] * od[1];
        for (int64_t q = 0; q < padded; ++q) {
          const float* row = src + ib + std::clamp<int64_t>(q - r, 0, n - 1) * is;
          double* bq = buf.data() + q * L;
          for (int64_t l = 0; l < nl; ++l) bq[l] = row[l * lin];
        }
        for (int64_t i = 0; i < m; ++i) {
          const int64_t base = int64_t(f) * i + (f - 1) / 2; // buffer index of tap offset -r
          double acc[L] = {};
          for (int t = 0; t < T; ++t) {
            const double wt = w[static_cast<size_t>(t)];
            const double* bq = buf.data() + std::min<int64_t>(base + t, padded - 1) * L; // never past the buffer
            for (int64_t l = 0; l < L; ++l) acc[l] += wt * bq[l];
          }
          float* out = dst + ob + i * os;
          for (int64_t l = 0; l < nl; ++l) out[l * lout] = float(acc[l]);
        }
      }
    });
    std::swap(cur, next);
    src = cur.data();
    for (int d = 0; d < 3; ++d) dims[d] = od[d];
  }
  Geometry o = g;
  for (int d = 0; d < 3; ++d) o.dims[d] = dims[d];
  o.affine = g.affine * S;
  Image<float> out(o, no_init);
  std::copy(src, src + out.size(), out.data());
  return out;
}

} // namespace voxalign::reg
