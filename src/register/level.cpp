// One registration level: the pyramid images (cached, each derived from the finest earlier one),
// the fixed samples and the moving coefficients (docs/register.md).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "voxalign/register/engine.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"

namespace voxalign::reg {
namespace {

/// Nearest full-resolution index of each level index along one axis of an axis-aligned level
/// (level voxel i sits at full-resolution position scale * i + offset), clamped to the grid.
std::vector<int64_t> axis_table(int64_t n, double scale, double offset, int64_t full) {
  std::vector<int64_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    t[static_cast<size_t>(i)] = std::clamp<int64_t>(std::llround(scale * double(i) + offset), 0, full - 1);
  return t;
}

/// Per-voxel test "the nearest voxel of `mask` (on the full grid `full`) is non-zero" for every
/// voxel of the level grid `level` (a shrink of `full`: axis-aligned in voxel space).
std::vector<uint8_t> level_mask(const Geometry& level, const Geometry& full, const Image<float>* mask) {
  const int64_t nx = level.dims[0], ny = level.dims[1], nz = level.dims[2];
  std::vector<uint8_t> out(static_cast<size_t>(nx * ny * nz), 1);
  if (!mask) return out;
  const Mat4 Q = full.affine.inverse() * level.affine;
  const auto ti = axis_table(nx, Q(0, 0), Q(0, 3), full.dims[0]), tj = axis_table(ny, Q(1, 1), Q(1, 3), full.dims[1]),
             tk = axis_table(nz, Q(2, 2), Q(2, 3), full.dims[2]);
  const float* m = mask->data();
  parallel_for(nz, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k)
      for (int64_t j = 0; j < ny; ++j) {
        const int64_t row = full.dims[0] * (tj[static_cast<size_t>(j)] + full.dims[1] * tk[static_cast<size_t>(k)]);
        uint8_t* o = out.data() + nx * (j + ny * k);
        for (int64_t i = 0; i < nx; ++i) o[i] = m[row + ti[static_cast<size_t>(i)]] != 0.0f;
      }
  });
  return out;
}

/// Shift a row of bits (bit i of word i / 64) by d < 64 positions towards higher (up) or lower
/// indices; the positions shifted in are 1 (outside the grid counts as clean).
void shift_row(const uint64_t* in, uint64_t* out, int64_t W, int d, bool up) {
  for (int64_t w = 0; w < W; ++w) {
    if (up) { // out bit i = in bit i - d
      const uint64_t lo = w > 0 ? in[w - 1] : ~uint64_t(0);
      out[w] = (in[w] << d) | (lo >> (64 - d));
    } else { // out bit i = in bit i + d
      const uint64_t hi = w + 1 < W ? in[w + 1] : ~uint64_t(0);
      out[w] = (in[w] >> d) | (hi << (64 - d));
    }
  }
}

} // namespace

FillMap fill_map(const Image<float>& level, const Geometry& full, const Image<float>& full_image, int ndim, int r) {
  const Geometry& g = level.geometry();
  FillMap f;
  const int64_t nx = g.dims[0], ny = g.dims[1], nz = ndim == 2 ? 1 : g.dims[2];
  f.nx = nx, f.ny = ny;
  f.W = (nx + 63) / 64;
  const int64_t W = f.W, rows = ny * nz;
  std::vector<uint64_t> a(static_cast<size_t>(W * rows)), t(a.size());
  // Bits: 1 where the level voxel's nearest full-resolution voxel is not 0 (padding bits 1).
  const bool same = g.same_grid(full);
  const Mat4 Q = full.affine.inverse() * g.affine;
  std::vector<int64_t> ti(static_cast<size_t>(nx)), tj(static_cast<size_t>(ny)), tk(static_cast<size_t>(nz));
  for (int64_t i = 0; i < nx; ++i) ti[static_cast<size_t>(i)] = std::clamp<int64_t>(std::llround(Q(0, 0) * double(i) + Q(0, 3)), 0, full.dims[0] - 1);
  for (int64_t j = 0; j < ny; ++j) tj[static_cast<size_t>(j)] = std::clamp<int64_t>(std::llround(Q(1, 1) * double(j) + Q(1, 3)), 0, full.dims[1] - 1);
  for (int64_t k = 0; k < nz; ++k) tk[static_cast<size_t>(k)] = std::clamp<int64_t>(std::llround(Q(2, 2) * double(k) + Q(2, 3)), 0, full.dims[2] - 1);
  std::vector<uint8_t> any(static_cast<size_t>(rows), 0);
  parallel_for(rows, 64, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t j = row % ny, k = row / ny;
      const float* v = same ? full_image.data() + nx * row
                            : full_image.data() + full.dims[0] * (tj[static_cast<size_t>(j)] + full.dims[1] * tk[static_cast<size_t>(k)]);
      uint64_t* o = a.data() + W * row;
      bool zero = false;
      for (int64_t w = 0; w < W; ++w) {
        const int64_t i0 = 64 * w, m = std::min<int64_t>(64, nx - i0);
        uint64_t word = m < 64 ? ~uint64_t(0) << m : 0; // padding bits 1
        if (same)
          for (int64_t i = 0; i < m; ++i) word |= uint64_t(v[i0 + i] != 0.0f) << i;
        else
          for (int64_t i = 0; i < m; ++i) word |= uint64_t(v[ti[static_cast<size_t>(i0 + i)]] != 0.0f) << i;
        o[w] = word;
        zero |= word != ~uint64_t(0);
      }
      any[static_cast<size_t>(row)] = zero;
    }
  });
  if (std::find(any.begin(), any.end(), uint8_t(1)) == any.end()) return f; // no fill: empty map
  // Erode by r along i (shifted rows), then j and k (whole rows ANDed); outside counts as clean.
  parallel_for(rows, 64, [&](int64_t b, int64_t e) {
    std::vector<uint64_t> sh(static_cast<size_t>(W));
    for (int64_t row = b; row < e; ++row) {
      const uint64_t* in = a.data() + W * row;
      uint64_t* o = t.data() + W * row;
      std::copy_n(in, W, o);
      for (int d = 1; d <= r && nx > 1; ++d)
        for (bool up : {true, false}) {
          shift_row(in, sh.data(), W, d, up);
          for (int64_t w = 0; w < W; ++w) o[w] &= sh[static_cast<size_t>(w)];
        }
    }
  });
  auto rows_pass = [&](const std::vector<uint64_t>& in, std::vector<uint64_t>& out, int axis) {
    const int64_t n = axis == 1 ? ny : nz, step = axis == 1 ? W : W * ny;
    parallel_for(rows, 64, [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        const int64_t c = axis == 1 ? row % ny : row / ny;
        uint64_t* o = out.data() + W * row;
        std::copy_n(in.data() + W * row, W, o);
        for (int64_t q = std::max<int64_t>(0, c - r); q <= std::min<int64_t>(n - 1, c + r); ++q)
          if (q != c)
            for (int64_t w = 0; w < W; ++w) o[w] &= in[static_cast<size_t>(W * row + (q - c) * step + w)];
      }
    });
  };
  if (ny > 1) rows_pass(t, a, 1);
  else a.swap(t);
  if (nz > 1) {
    rows_pass(a, t, 2);
    a.swap(t);
  }
  f.bits = std::move(a);
  return f;
}

const Image<float>& Pyramid::get(int shrink, double sigma_mm) {
  if (shrink == 1 && !(sigma_mm > 0)) return base_;
  for (const auto& e : cache_)
    if (e.shrink == shrink && e.sigma == sigma_mm) return *e.image;
  // Start from the coarsest cached level that divides this one and is no smoother.
  const Image<float>* src = &base_;
  int s0 = 1;
  double sig0 = 0.0;
  for (const auto& e : cache_)
    if (shrink % e.shrink == 0 && e.sigma <= sigma_mm && e.shrink > s0) src = e.image.get(), s0 = e.shrink, sig0 = e.sigma;
  const double extra = std::sqrt(std::max(0.0, sigma_mm * sigma_mm - sig0 * sig0));
  const Vec3 sp = src->geometry().spacing();
  double sv[3];
  for (int d = 0; d < 3; ++d) sv[d] = extra > 0 ? extra / sp[d] : 0.0;
  cache_.push_back({shrink, sigma_mm, std::make_unique<Image<float>>(smooth_shrink(*src, sv, shrink / s0))});
  return *cache_.back().image;
}

double sample_radius(const Level& L, const Vec3& centre) {
  double r2 = 0;
  for (int64_t i = 0; i < L.count; ++i) {
    const Eigen::Vector4d x(L.pos[static_cast<size_t>(3 * i)], L.pos[static_cast<size_t>(3 * i + 1)],
                            L.pos[static_cast<size_t>(3 * i + 2)], 1.0);
    const Eigen::Vector4d w = L.fixed_affine * x;
    r2 += (Vec3(w[0], w[1], w[2]) - centre).squaredNorm();
  }
  return std::max(1.0, std::sqrt(r2 / double(std::max<int64_t>(1, L.count))));
}

int moving_shrink(const Geometry& fixed, const Geometry& moving, int shrink) {
  const Vec3 fsp = fixed.spacing(), msp = moving.spacing();
  const bool two_d = fixed.dims[2] == 1;
  const double fmean = two_d ? 0.5 * (fsp[0] + fsp[1]) : fsp.mean();
  const double mmean = two_d ? 0.5 * (msp[0] + msp[1]) : msp.mean();
  return std::max(1, int(std::lround(shrink * fmean / mmean)));
}

Level make_level(const Image<float>& F, const Image<float>& M, const Geometry& fixed_full, const Image<float>* fixed_mask,
                 const Geometry& moving_full, const Image<float>* moving_mask, Metric metric,
                 const RegisterOptions& o, const Image<float>* fixed_image, const Image<float>* moving_image) {
  Level L;
  const Geometry& Fg = F.geometry();
  L.ndim = Fg.dims[2] == 1 ? 2 : 3;
  L.bins = o.bins;
  L.radius = o.radius;
  L.fixed_affine = Fg.affine;
  L.moving_affine = M.geometry().affine;
  for (int d = 0; d < 3; ++d) L.dims[d] = Fg.dims[d];
  // Fixed samples: level voxels whose nearest full-resolution voxel is in the mask.
  std::vector<uint8_t> inm = level_mask(Fg, fixed_full, fixed_mask);
  const bool fill = o.skip_fill && metric != Metric::LNCC;
  if (fill && fixed_image) { // fixed fill: voxels exactly 0 are no samples
    if (Fg.same_grid(fixed_full)) { // the full-resolution level: compare in place
      const float* v = fixed_image->data();
      parallel_for(int64_t(inm.size()), 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t q = b; q < e; ++q) inm[static_cast<size_t>(q)] &= v[q] != 0.0f;
      });
    } else {
      const std::vector<uint8_t> nz = level_mask(Fg, fixed_full, fixed_image);
      for (size_t u = 0; u < inm.size(); ++u) inm[u] &= nz[u];
    }
  }
  const int64_t nx = Fg.dims[0], ny = Fg.dims[1], nz = Fg.dims[2];
  int64_t inside = 0;
  for (uint8_t b : inm) inside += b;
  VX_CHECK(inside > 0, InvalidArgument, "the fixed mask", fill && fixed_image ? " and the fixed image's non-zero voxels leave" : " leaves",
           " no voxel of the ", nx, "x", ny, "x", nz, " level grid");
  L.dense = metric == Metric::LNCC;
  int stride = 1;
  if (!L.dense)
    while (double(inside) / std::pow(double(stride), L.ndim) > double(o.max_samples)) ++stride;
  for (int64_t k = 0; k < nz; k += (L.ndim == 3 ? stride : 1))
    for (int64_t j = 0; j < ny; j += stride)
      for (int64_t i = 0; i < nx; i += stride) {
        const size_t u = static_cast<size_t>(i + nx * (j + ny * k));
        if (!L.dense && !inm[u]) continue;
        L.pos.insert(L.pos.end(), {float(i), float(j), float(k)});
        L.fval.push_back(F.data()[u]);
      }
  if (L.dense) L.inmask = std::move(inm);
  L.count = int64_t(L.fval.size());
  L.fmin = *std::min_element(L.fval.begin(), L.fval.end());
  L.fmax = *std::max_element(L.fval.begin(), L.fval.end());
  L.moving_mask = moving_mask;
  L.level_to_mask = moving_full.affine.inverse() * M.geometry().affine;
  if (metric == Metric::MI || metric == Metric::LNCC) {
    // Moving intensity range (mi) and variance (lncc), within the moving mask when given.
    const std::vector<uint8_t> mm = level_mask(M.geometry(), moving_full, moving_mask);
    double lo = std::numeric_limits<double>::infinity(), hi = -lo, s1 = 0, s2 = 0, cnt = 0;
    for (int64_t q = 0; q < M.size(); ++q) {
      if (!mm[static_cast<size_t>(q)]) continue;
      const double v = M.data()[q];
      lo = std::min(lo, v), hi = std::max(hi, v);
      s1 += v, s2 += v * v, cnt += 1;
    }
    L.mmin = std::isfinite(lo) ? lo : 0.0;
    L.mmax = std::isfinite(hi) ? hi : 1.0;
    L.mvar = cnt > 0 ? std::max(0.0, s2 / cnt - (s1 / cnt) * (s1 / cnt)) : 1.0;
  }
  if (fill && moving_image) {
    // Moving fill: voxels exactly 0 (what resamplers write where they have no data). A level voxel
    // is fill when its nearest full-resolution voxel is; samples whose stencil reaches one are left
    // out (docs/register.md, "Samples near the moving image's edges").
    L.mfill = fill_map(M, moving_full, *moving_image, L.ndim, o.degree / 2 + 1);
  }
  L.coef = spline_coefficients<float>(M.view(), L.ndim, o.degree, Mode::Mirror);
  return L;
}

std::pair<int64_t, int64_t> voxels_inside(const Geometry& fg, const Geometry& mg, const Mat4& M, int64_t step) {
  int64_t inside = 0, total = 0;
  for (int64_t k = 0; k < fg.dims[2]; k += step)
    for (int64_t j = 0; j < fg.dims[1]; j += step)
      for (int64_t i = 0; i < fg.dims[0]; i += step) {
        ++total;
        const Eigen::Vector4d q = M * Eigen::Vector4d(double(i), double(j), double(k), 1.0);
        bool in = true;
        for (int d = 0; d < 3 && in; ++d) in = mg.dims[d] == 1 || (q[d] >= 0.0 && q[d] <= double(mg.dims[d] - 1));
        inside += in;
      }
  return {inside, total};
}

} // namespace voxalign::reg
