#include "voxalign/spline/prefilter.hpp"
#include "voxalign/kernel/prefilter_line.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"

namespace voxalign {

std::vector<double> bspline_poles(int degree) {
  std::vector<double> poles;
  for (int p = 0; p < kernel::bspline_pole_count(degree); ++p) poles.push_back(kernel::bspline_pole(degree, p));
  return poles;
}

void prefilter_lines(double* c, int64_t n, int64_t m, int degree, Mode mode) {
  std::vector<double> tmp(static_cast<size_t>(m));
  kernel::prefilter_lines(c, n, m, m, degree, mode, tmp.data());
}

namespace {
// Transpose of causal_reflect: that step replaces c[0] by sum_i a_i c[i] (the weights below are
// read off its two branches); its transpose adds a_i * c[0] to every c[i] and scales c[0] by a_0.
void causal_reflect_transpose(double* c, int64_t n, int64_t m, double z) {
  std::vector<double> a(static_cast<size_t>(n), 0.0);
  const int64_t h = kernel::pole_horizon(z);
  if (h < n) {
    a[0] = 1 + z;
    double zi = z;
    for (int64_t i = 1; i < h; ++i) zi *= z, a[static_cast<size_t>(i)] = zi;
  } else {
    // The forward loop's last term (i = n-1) reads c[0] after the earlier terms were added to it,
    // so everything accumulated before it is scaled by (1 + z^(n-1) z^n) -- as scipy computes it.
    const double zn = std::pow(z, double(n));
    const double s = z / (1 - zn * zn);
    std::vector<double> b(static_cast<size_t>(n), 0.0);
    b[0] += 1.0;
    b[static_cast<size_t>(n - 1)] += zn;
    double zi = z;
    for (int64_t i = 1; i < n - 1; ++i) {
      b[static_cast<size_t>(i)] += zi;
      b[static_cast<size_t>(n - 1 - i)] += zi * zn;
      zi *= z;
    }
    const double q = 1.0 + zi * zn; // zi = z^(n-1)
    for (int64_t i = 0; i < n; ++i) a[static_cast<size_t>(i)] = s * q * b[static_cast<size_t>(i)];
    a[static_cast<size_t>(n - 1)] += s * zi;
    a[0] += 1.0;
  }
  for (int64_t l = 0; l < m; ++l) {
    const double cb = c[l];
    for (int64_t i = 1; i < n; ++i) c[i * m + l] += a[static_cast<size_t>(i)] * cb;
    c[l] = a[0] * cb;
  }
}
} // namespace

// Transpose of prefilter_lines for the reflect initialisation (modes reflect and nearest): the
// steps of the forward filter transposed one by one, in reverse order. scipy's reflect
// initialisation is not exactly the inverse of a symmetric matrix on short lines, so no symmetry
// shortcut applies here (the mirror and periodic ones are; see spline_coefficients_adjoint).
static void prefilter_lines_reflect_transpose(double* c, int64_t n, int64_t m, int degree) {
  const std::vector<double> poles = bspline_poles(degree);
  if (poles.empty() || n < 2) return;
  for (auto it = poles.rbegin(); it != poles.rend(); ++it) {
    const double z = *it;
    for (int64_t i = 0; i <= n - 2; ++i) { // anticausal recursion c[i] = z (c[i+1] - c[i]), i = n-2 .. 0
      double* a = c + i * m;
      double* b = a + m;
      for (int64_t l = 0; l < m; ++l) {
        b[l] += z * a[l];
        a[l] *= -z;
      }
    }
    double* cl = c + (n - 1) * m; // anticausal_reflect: a diagonal scaling
    for (int64_t l = 0; l < m; ++l) cl[l] *= z / (z - 1);
    for (int64_t i = n - 1; i >= 1; --i) { // causal recursion c[i] += z c[i-1]
      double* a = c + i * m;
      double* b = a - m;
      for (int64_t l = 0; l < m; ++l) b[l] += z * a[l];
    }
    causal_reflect_transpose(c, n, m, z);
  }
  double gain = 1.0;
  for (double z : poles) gain *= (1.0 - z) * (1.0 - 1.0 / z);
  for (int64_t i = 0; i < n * m; ++i) c[i] *= gain;
}

namespace {
// Filter the contiguous lines o in [o0, o1) (line o holds data[o*n .. o*n+n)), 16 at a time.
using LineBuffer = Buffer<double>; // uninitialised on resize: every element is written before use

// The forward line filter, or (transpose) the transposed reflect one.
void filter_buffer(double* c, int64_t n, int64_t m, int degree, Mode mode, bool transpose) {
  if (transpose) prefilter_lines_reflect_transpose(c, n, m, degree);
  else prefilter_lines(c, n, m, degree, mode);
}

template <class T>
void filter_rows(T* data, int64_t n, int64_t o0, int64_t o1, int degree, Mode mode, LineBuffer& buf,
                 bool transpose = false) {
  constexpr int64_t B = 16;
  buf.resize(static_cast<size_t>(n * B));
  for (int64_t g = o0; g < o1; g += B) {
    const int64_t m = std::min(B, o1 - g);
    for (int64_t l = 0; l < m; ++l) {
      const T* src = data + (g + l) * n;
      for (int64_t k = 0; k < n; ++k) buf[size_t(k * m + l)] = double(src[k]);
    }
    filter_buffer(buf.data(), n, m, degree, mode, transpose);
    for (int64_t l = 0; l < m; ++l) {
      T* dst = data + (g + l) * n;
      for (int64_t k = 0; k < n; ++k) dst[k] = T(buf[size_t(k * m + l)]);
    }
  }
}

// Filter the strided lines i in [i0, i1) (element k of line i at base[k*inner + i]), B at a time
// with B sized so the double buffer (n x B) stays in L2 while rows are read contiguously.
template <class T>
void filter_strided(T* base, int64_t n, int64_t inner, int64_t i0, int64_t i1, int degree, Mode mode,
                    LineBuffer& buf, bool transpose = false) {
  const int64_t B = std::clamp<int64_t>((32768 / n) / 16 * 16, 16, 256);
  buf.resize(static_cast<size_t>(n * B));
  for (int64_t g = i0; g < i1; g += B) {
    const int64_t m = std::min(B, i1 - g);
    T* b = base + g;
    for (int64_t k = 0; k < n; ++k)
      for (int64_t l = 0; l < m; ++l) buf[size_t(k * m + l)] = double(b[k * inner + l]);
    filter_buffer(buf.data(), n, m, degree, mode, transpose);
    for (int64_t k = 0; k < n; ++k)
      for (int64_t l = 0; l < m; ++l) b[k * inner + l] = T(buf[size_t(k * m + l)]);
  }
}

// Filter every line of `data` (contiguous, dims d) along `axis`. Every line is filtered by the
// same arithmetic whatever the grouping, so results do not depend on blocks or threads.
template <class T> void filter_axis(T* data, const int64_t* d, int axis, int degree, Mode mode, bool transpose = false) {
  const int64_t n = d[axis];
  if (n < 2) return;
  int64_t inner = 1, outer = 1;
  for (int a = 0; a < axis; ++a) inner *= d[a];
  for (int a = axis + 1; a < 4; ++a) outer *= d[a];
  const int64_t grain = std::max<int64_t>(1, 65536 / n);
  if (inner == 1) {
    parallel_for(outer, grain, [&](int64_t o0, int64_t o1) {
      thread_local LineBuffer buf;
      filter_rows(data, n, o0, o1, degree, mode, buf, transpose);
    });
    return;
  }
  // Work items: (outer index o, block of 256 inner indices).
  constexpr int64_t IB = 256;
  const int64_t per_outer = (inner + IB - 1) / IB;
  parallel_for(outer * per_outer, std::max<int64_t>(1, grain / IB), [&](int64_t w0, int64_t w1) {
    thread_local LineBuffer buf;
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t o = w / per_outer, i0 = (w % per_outer) * IB;
      filter_strided(data + o * n * inner, n, inner, i0, std::min(inner, i0 + IB), degree, mode, buf, transpose);
    }
  });
}

// 3D: axes 0 and 1 slice by slice (a slice stays in cache between the two passes), then axis 2.
// fill(k), when given, writes slice k just before its passes (so the data is still in cache).
struct NoFill {
  void operator()(int64_t) const {}
};
template <class T, class Fill = NoFill>
void filter_volume(T* data, const int64_t* d, int ndim, int degree, Mode mode, bool transpose = false, Fill fill = {}) {
  if (ndim == 3 && d[2] >= 8) {
    const int64_t n0 = d[0], n1 = d[1];
    parallel_for(d[2], 1, [&](int64_t k0, int64_t k1) {
      thread_local LineBuffer buf;
      for (int64_t k = k0; k < k1; ++k) {
        fill(k);
        T* slice = data + k * n0 * n1;
        if (n0 >= 2) filter_rows(slice, n0, 0, n1, degree, mode, buf, transpose);
        if (n1 >= 2) filter_strided(slice, n1, n0, 0, n0, degree, mode, buf, transpose);
      }
    });
    filter_axis(data, d, 2, degree, mode, transpose);
    return;
  }
  for (int a = 0; a < ndim; ++a) filter_axis(data, d, a, degree, mode, transpose);
}
} // namespace

template <class T>
Coefficients<T> spline_coefficients(ImageView<const T> in, int ndim, int order, Mode mode, double cval) {
  VX_CHECK(ndim >= 1 && ndim <= 3, InvalidArgument, "interpolation works on 1 to 3 axes, not ", ndim);
  VX_CHECK((order >= 0 && order <= 7) || order == kKeys, InvalidArgument, "interpolation order must be 0..7 or keys, not ", order);
  for (int d = ndim; d < 4; ++d)
    VX_CHECK(in.dims[d] == 1, InvalidArgument, "spline_coefficients: axis ", d, " has size ", in.dims[d],
             " but only ", ndim, " axes are interpolated (pass one frame at a time)");
  Coefficients<T> c;
  c.ndim = ndim;
  c.order = order;
  c.mode = mode;
  c.cval = cval;
  c.pad = coefficient_pad(order, mode);
  const int64_t p = c.pad;
  Geometry g;
  g.ndim = ndim;
  for (int d = 0; d < 4; ++d) g.dims[d] = in.dims[d] + (d < ndim ? 2 * p : 0);
  c.image = Image<T>(g, no_init); // every voxel is written by the copy below
  T* out = c.image.data();
  const int64_t d0 = g.dims[0], d1 = g.dims[1], d2 = g.dims[2];
  const int64_t p1 = ndim > 1 ? p : 0, p2 = ndim > 2 ? p : 0;
  // A source whose axis 0 is not its fastest (C order, transposed views): the samples first go to
  // their place in `out` in cache-friendly tiles, and the row copy below reads them there.
  bool staged = false;
  for (int d = 1; d < 4; ++d)
    staged |= in.dims[0] > 1 && in.dims[d] > 1 && std::llabs(in.strides[d]) < std::llabs(in.strides[0]);
  if (staged) {
    ImageView<T> interior = c.image.view();
    interior.data += p + p1 * d0 + p2 * d0 * d1;
    for (int d = 0; d < 4; ++d) interior.dims[d] = in.dims[d];
    copy_view<T>(in, interior);
    in = interior;
  }
  // Copy (with scipy's padding: edge values for 'nearest', cval for 'grid-constant'), row by row.
  const T fill = T(cval);
  auto copy_rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t j = r % d1, k = r / d1;
      T* row = out + r * d0;
      const int64_t sj = j - p1, sk = k - p2;
      const bool row_in = sj >= 0 && sj < in.dims[1] && sk >= 0 && sk < in.dims[2];
      if (mode == Mode::GridConstant && !row_in) {
        std::fill(row, row + d0, fill);
        continue;
      }
      const T* src = &in(0, std::clamp<int64_t>(sj, 0, in.dims[1] - 1), std::clamp<int64_t>(sk, 0, in.dims[2] - 1));
      const int64_t n0 = in.dims[0], s0 = in.strides[0];
      if (src == row + p) { // staged: already in place
      } else if (s0 == 1) {
        std::copy(src, src + n0, row + p);
      } else {
        for (int64_t i = 0; i < n0; ++i) row[p + i] = src[i * s0];
      }
      const T left = mode == Mode::GridConstant ? fill : src[0];
      const T right = mode == Mode::GridConstant ? fill : src[(n0 - 1) * s0];
      std::fill(row, row + p, left);
      std::fill(row + p + n0, row + d0, right);
    }
  };
  // The copy fused with the slice passes; not for staged samples with padding, whose edge rows are
  // read from slices that other threads filter in place.
  if (needs_prefilter(order) && ndim == 3 && d2 >= 8 && !(staged && p > 0)) {
    filter_volume(out, g.dims.data(), ndim, order, mode, false, [&](int64_t k) { copy_rows(k * d1, (k + 1) * d1); });
    return c;
  }
  parallel_for(d1 * d2, 64, copy_rows);
  if (needs_prefilter(order)) filter_volume(out, g.dims.data(), ndim, order, mode);
  return c;
}

template <class T> void prefilter_in_place(T* data, const int64_t* dims, int ndim, int order, Mode mode) {
  if (needs_prefilter(order)) filter_volume(data, dims, ndim, order, mode);
}

namespace {
// Multiply the first and last planes of each interpolated axis by f (the D^-1 / D scalings of the
// mirror prefilter's transpose; a corner is scaled once per axis it is on the edge of).
template <class T> void scale_edge_planes(T* data, const int64_t* d, int ndim, T f) {
  for (int a = 0; a < ndim; ++a) {
    if (d[a] < 2) continue;
    int64_t inner = 1, outer = 1;
    for (int b = 0; b < a; ++b) inner *= d[b];
    for (int b = a + 1; b < 4; ++b) outer *= d[b];
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t e : {int64_t(0), d[a] - 1}) {
        T* p = data + (o * d[a] + e) * inner;
        for (int64_t i = 0; i < inner; ++i) p[i] *= f;
      }
  }
}
} // namespace

template <class T> void prefilter_transpose_in_place(T* data, const int64_t* d, int ndim, int order, Mode mode) {
  if (!needs_prefilter(order)) return;
  const bool reflect_init = mode == Mode::Nearest || mode == Mode::Reflect;
  const bool mirror_init = !reflect_init && mode != Mode::GridWrap;
  if (mirror_init) scale_edge_planes(data, d, ndim, T(2));
  filter_volume(data, d, ndim, order, mode, reflect_init);
  if (mirror_init) scale_edge_planes(data, d, ndim, T(0.5));
}

template <class T> void spline_coefficients_adjoint(Coefficients<T>& c, ImageView<T> out) {
  const auto& g = c.image.geometry();
  const int64_t* d = g.dims.data();
  const int ndim = c.ndim;
  for (int a = 0; a < 4; ++a)
    VX_CHECK(out.dims[a] == d[a] - (a < ndim ? 2 * c.pad : 0), InvalidArgument,
             "spline_coefficients_adjoint: output grid does not match the coefficients");
  T* data = c.image.data();
  prefilter_transpose_in_place(data, d, ndim, c.order, c.mode);
  // Transpose of the padding: padded sample q of an axis came from input sample clamp(q - pad)
  // ('nearest') or from cval ('grid-constant': no input sample).
  const int64_t p = c.pad;
  const bool nearest = c.mode == Mode::Nearest;
  const int64_t p1 = ndim > 1 ? p : 0, p2 = ndim > 2 ? p : 0;
  auto src_range = [&](int64_t i, int64_t n, int64_t pp, int64_t& lo, int64_t& hi) { // padded indices feeding i
    lo = i + pp, hi = i + pp + 1;
    if (nearest && pp > 0) {
      if (i == 0) lo = 0;
      if (i == n - 1) hi = n + 2 * pp;
    }
  };
  parallel_for(out.dims[1] * out.dims[2] * out.dims[3], 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t j = r % out.dims[1], k = (r / out.dims[1]) % out.dims[2], t = r / (out.dims[1] * out.dims[2]);
      int64_t jl, jh, kl, kh;
      src_range(j, out.dims[1], p1, jl, jh);
      src_range(k, out.dims[2], p2, kl, kh);
      auto summed = [&](int64_t i) { // voxel i of the row: the sum of its source samples
        int64_t il, ih;
        src_range(i, out.dims[0], p, il, ih);
        double s = 0.0;
        for (int64_t kk = kl; kk < kh; ++kk)
          for (int64_t jj = jl; jj < jh; ++jj)
            for (int64_t ii = il; ii < ih; ++ii) s += double(data[ii + d[0] * (jj + d[1] * (kk + d[2] * t))]);
        out(i, j, k, t) = T(s);
      };
      // Voxels [i_lo, i_hi) have one source sample each (all rows but the edges of 'nearest'): a copy.
      const int64_t n0 = out.dims[0];
      const bool single = jh - jl == 1 && kh - kl == 1;
      const int64_t e = nearest && p > 0 ? 1 : 0;
      const int64_t i_lo = single ? std::min(e, n0) : n0, i_hi = single ? std::max(i_lo, n0 - e) : n0;
      for (int64_t i = 0; i < i_lo; ++i) summed(i);
      const T* src = data + p + d[0] * (jl + d[1] * (kl + d[2] * t));
      for (int64_t i = i_lo; i < i_hi; ++i) out(i, j, k, t) = src[i];
      for (int64_t i = i_hi; i < n0; ++i) summed(i);
    }
  });
}

template Coefficients<float> spline_coefficients(ImageView<const float>, int, int, Mode, double);
template Coefficients<double> spline_coefficients(ImageView<const double>, int, int, Mode, double);
template void prefilter_in_place(float*, const int64_t*, int, int, Mode);
template void prefilter_in_place(double*, const int64_t*, int, int, Mode);
template void spline_coefficients_adjoint(Coefficients<float>&, ImageView<float>);
template void prefilter_transpose_in_place(float*, const int64_t*, int, int, Mode);
template void prefilter_transpose_in_place(double*, const int64_t*, int, int, Mode);
template void spline_coefficients_adjoint(Coefficients<double>&, ImageView<double>);

} // namespace voxalign
