// The separable cubic B-spline field of the susceptibility correction and its bending energy.
// Every pass writes each output element from one block, in a fixed order: bit-identical results
// for any thread count.
#include <algorithm>
#include <cmath>

#include "internal.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/image/image.hpp"
#include "voxalign/spline/weights.hpp"

namespace voxalign::sdc_detail {

ControlLayout control_layout(int64_t n_full, double spacing_vox) {
  ControlLayout L;
  L.spacing = spacing_vox;
  if (n_full <= 1) return L; // one control point: constant along the axis
  const int64_t m = std::max<int64_t>(1, int64_t(std::ceil((n_full - 1) / spacing_vox - 1e-9)));
  L.nc = m + 4; // taps floor(t) - 1 .. floor(t) + 2 for t in [1, m + 1]
  L.origin = 0.5 * double(n_full - 1) - 0.5 * double(m) * spacing_vox;
  return L;
}

AxisBasis make_axis(const ControlLayout& L, int64_t n, int factor) {
  AxisBasis A;
  A.n = n;
  A.nc = L.nc;
  A.start.assign(size_t(n), 0);
  A.w.assign(size_t(4 * n), 0.0);
  A.dw.assign(size_t(4 * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    if (L.nc == 1) {
      A.w[size_t(4 * i)] = 1.0;
      continue;
    }
    const double y = double(factor) * double(i) + 0.5 * (factor - 1);
    // Points beyond the lattice (only when refitting between levels) take the edge's value.
    const double t = std::clamp((y - L.origin) / L.spacing + 1.0, 1.0, double(L.nc) - 2.0 - 1e-9);
    A.start[size_t(i)] = int64_t(std::floor(t)) - 1;
    kernel_weights<3, double>(t, &A.w[size_t(4 * i)], &A.dw[size_t(4 * i)]);
    for (int k = 0; k < 4; ++k) A.dw[size_t(4 * i + k)] /= L.spacing;
  }
  return A;
}

namespace {

int taps(const AxisBasis& A) { return A.nc == 1 ? 1 : 4; }

/// The adjoint of the tensor product with weight tables: along axis 0, sum over the `nin` inputs
/// of table t0[q] times input q; along axes 1 and 2, tables t1 and t2.
void adjoint_tables(const FieldBasis& B, int nin, const double* const* in, const double* const* t0, const double* t1,
                    const double* t2, double* out) {
  const AxisBasis &A0 = B.ax[0], &A1 = B.ax[1], &A2 = B.ax[2];
  const int64_t m0 = A0.nc, m1 = A1.nc, m2 = A2.nc, n0 = A0.n, n1 = A1.n, n2 = A2.n;
  const int k0 = taps(A0), k1 = taps(A1), k2 = taps(A2);
  Buffer<double> U2(static_cast<size_t>(m0 * n1 * n2)), U1(static_cast<size_t>(m0 * m1 * n2));
  parallel_for(n1 * n2, 64, [&](int64_t b, int64_t e) {
    for (int64_t line = b; line < e; ++line) {
      double* u = U2.data() + m0 * line;
      std::fill(u, u + m0, 0.0);
      if (k0 == 4) {
        // The first control index never decreases along the line: the 4 controls in reach are
        // summed in registers and written once each as the window moves on (a scatter into memory
        // waits on its own stores: 3x slower).
        int64_t cur = A0.start[0];
        double acc[4] = {0, 0, 0, 0};
        for (int64_t i = 0; i < n0; ++i) {
          for (const int64_t s = A0.start[size_t(i)]; cur < s; ++cur) {
            u[cur] += acc[0];
            acc[0] = acc[1], acc[1] = acc[2], acc[2] = acc[3], acc[3] = 0;
          }
          for (int q = 0; q < nin; ++q) {
            if (!in[q]) continue;
            const double v = in[q][n0 * line + i];
            const double* w = t0[q] + 4 * i;
            for (int k = 0; k < 4; ++k) acc[k] += w[k] * v;
          }
        }
        for (int k = 0; k < 4; ++k) u[cur + k] += acc[k];
        continue;
      }
      for (int q = 0; q < nin; ++q) {
        if (!in[q]) continue;
        const double* src = in[q] + n0 * line;
        for (int64_t i = 0; i < n0; ++i) {
          const int64_t s = A0.start[size_t(i)];
          const double* w = t0[q] + 4 * i;
          for (int k = 0; k < k0; ++k) u[s + k] += w[k] * src[i];
        }
      }
    }
  });
  parallel_for(n2, 1, [&](int64_t b, int64_t e) {
    for (int64_t i2 = b; i2 < e; ++i2) {
      double* u = U1.data() + m0 * m1 * i2;
      std::fill(u, u + m0 * m1, 0.0);
      for (int64_t i1 = 0; i1 < n1; ++i1) {
        const double* src = U2.data() + m0 * (i1 + n1 * i2);
        const int64_t s = A1.start[size_t(i1)];
        for (int k = 0; k < k1; ++k) {
          const double w = t1[4 * i1 + k];
          double* dst = u + m0 * (s + k);
          for (int64_t c0 = 0; c0 < m0; ++c0) dst[c0] += w * src[c0];
        }
      }
    }
  });
  parallel_for(m1, 1, [&](int64_t b, int64_t e) {
    for (int64_t c1 = b; c1 < e; ++c1) {
      for (int64_t c2 = 0; c2 < m2; ++c2) std::fill(out + m0 * (c1 + m1 * c2), out + m0 * (c1 + m1 * c2) + m0, 0.0);
      for (int64_t i2 = 0; i2 < n2; ++i2) {
        const double* src = U1.data() + m0 * (c1 + m1 * i2);
        const int64_t s = A2.start[size_t(i2)];
        for (int k = 0; k < k2; ++k) {
          const double w = t2[4 * i2 + k];
          double* dst = out + m0 * (c1 + m1 * (s + k));
          for (int64_t c0 = 0; c0 < m0; ++c0) dst[c0] += w * src[c0];
        }
      }
    }
  });
}

std::vector<double> product(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> p(a.size());
  for (size_t i = 0; i < a.size(); ++i) p[i] = a[i] * b[i];
  return p;
}

} // namespace

void FieldBasis::forward(const double* c, double* f, double* fp) const {
  const AxisBasis &A0 = ax[0], &A1 = ax[1], &A2 = ax[2];
  const int64_t m0 = A0.nc, m1 = A1.nc, n0 = A0.n, n1 = A1.n, n2 = A2.n;
  const int k0 = taps(A0), k1 = taps(A1), k2 = taps(A2);
  Buffer<double> T1(static_cast<size_t>(m0 * m1 * n2)), T2(static_cast<size_t>(m0 * n1 * n2));
  parallel_for(n2, 1, [&](int64_t b, int64_t e) {
    for (int64_t i2 = b; i2 < e; ++i2) {
      double* out = T1.data() + m0 * m1 * i2;
      const int64_t s = A2.start[size_t(i2)];
      for (int64_t j = 0; j < m0 * m1; ++j) {
        double a = 0;
        for (int k = 0; k < k2; ++k) a += A2.w[size_t(4 * i2 + k)] * c[j + m0 * m1 * (s + k)];
        out[j] = a;
      }
    }
  });
  parallel_for(n2, 1, [&](int64_t b, int64_t e) {
    for (int64_t i2 = b; i2 < e; ++i2)
      for (int64_t i1 = 0; i1 < n1; ++i1) {
        double* out = T2.data() + m0 * (i1 + n1 * i2);
        const int64_t s = A1.start[size_t(i1)];
        for (int64_t c0 = 0; c0 < m0; ++c0) {
          double a = 0;
          for (int k = 0; k < k1; ++k) a += A1.w[size_t(4 * i1 + k)] * T1[size_t(c0 + m0 * (s + k + m1 * i2))];
          out[c0] = a;
        }
      }
  });
  parallel_for(n1 * n2, 64, [&](int64_t b, int64_t e) {
    for (int64_t line = b; line < e; ++line) {
      const double* src = T2.data() + m0 * line;
      for (int64_t i = 0; i < n0; ++i) {
        const int64_t s = A0.start[size_t(i)];
        double a = 0, d = 0;
        for (int k = 0; k < k0; ++k) {
          a += A0.w[size_t(4 * i + k)] * src[s + k];
          d += A0.dw[size_t(4 * i + k)] * src[s + k];
        }
        f[i + n0 * line] = a;
        if (fp) fp[i + n0 * line] = d;
      }
    }
  });
}

void FieldBasis::adjoint(const double* a, const double* b, double* out) const {
  const double* in[2] = {a, b};
  const double* t0[2] = {ax[0].w.data(), ax[0].dw.data()};
  adjoint_tables(*this, 2, in, t0, ax[1].w.data(), ax[2].w.data(), out);
}

void FieldBasis::adjoint_squared(const double* q0, const double* q1, const double* q2, double* out) const {
  const std::vector<double> ww = product(ax[0].w, ax[0].w), wd = product(ax[0].w, ax[0].dw),
                            dd = product(ax[0].dw, ax[0].dw), w1 = product(ax[1].w, ax[1].w),
                            w2 = product(ax[2].w, ax[2].w);
  const double* in[3] = {q0, q1, q2};
  const double* t0[3] = {ww.data(), wd.data(), dd.data()};
  adjoint_tables(*this, 3, in, t0, w1.data(), w2.data(), out);
}

// ---------------------------------------------------------------- bending energy

namespace {

/// A difference operator: rows over a box of control indices, D c (row) = sum coef[t] c[row + off[t]].
struct Stencil {
  int64_t lo[3] = {0, 0, 0}, hi[3] = {1, 1, 1};
  int taps = 0;
  int64_t off[4] = {};
  double coef[4] = {};
  double weight = 0;
};

std::vector<Stencil> stencils(const Bending& R) {
  std::vector<Stencil> out;
  const int64_t stride[3] = {1, R.nc[0], R.nc[0] * R.nc[1]};
  const double V = R.h[0] * R.h[1] * R.h[2];
  for (int a = 0; a < 3; ++a) {
    if (R.nc[a] < 3) continue;
    Stencil s;
    for (int d = 0; d < 3; ++d) s.hi[d] = R.nc[d];
    s.lo[a] = 1;
    s.hi[a] = R.nc[a] - 1;
    s.taps = 3;
    s.off[0] = -stride[a], s.off[1] = 0, s.off[2] = stride[a];
    s.coef[0] = 1, s.coef[1] = -2, s.coef[2] = 1;
    s.weight = V / std::pow(R.h[a], 4);
    out.push_back(s);
  }
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b) {
      if (R.nc[a] < 2 || R.nc[b] < 2) continue;
      Stencil s;
      for (int d = 0; d < 3; ++d) s.hi[d] = R.nc[d];
      s.hi[a] = R.nc[a] - 1;
      s.hi[b] = R.nc[b] - 1;
      s.taps = 4;
      s.off[0] = 0, s.off[1] = stride[a], s.off[2] = stride[b], s.off[3] = stride[a] + stride[b];
      s.coef[0] = 1, s.coef[1] = -1, s.coef[2] = -1, s.coef[3] = 1;
      s.weight = 2 * V / (R.h[a] * R.h[a] * R.h[b] * R.h[b]);
      out.push_back(s);
    }
  return out;
}

template <class F> void rows(const Bending& R, const Stencil& s, F&& fn) {
  for (int64_t k = s.lo[2]; k < s.hi[2]; ++k)
    for (int64_t j = s.lo[1]; j < s.hi[1]; ++j)
      for (int64_t i = s.lo[0]; i < s.hi[0]; ++i) fn(i + R.nc[0] * (j + R.nc[1] * k));
}

} // namespace

double Bending::value(const double* c) const {
  double sum = 0;
  for (const Stencil& s : stencils(*this))
    rows(*this, s, [&](int64_t r) {
      double d = 0;
      for (int t = 0; t < s.taps; ++t) d += s.coef[t] * c[r + s.off[t]];
      sum += s.weight * d * d;
    });
  return 0.5 * lambda * sum;
}

void Bending::apply_add(const double* c, double* out) const {
  for (const Stencil& s : stencils(*this))
    rows(*this, s, [&](int64_t r) {
      double d = 0;
      for (int t = 0; t < s.taps; ++t) d += s.coef[t] * c[r + s.off[t]];
      for (int t = 0; t < s.taps; ++t) out[r + s.off[t]] += lambda * s.weight * s.coef[t] * d;
    });
}

void Bending::diag_add(double* out) const {
  for (const Stencil& s : stencils(*this))
    rows(*this, s, [&](int64_t r) {
      for (int t = 0; t < s.taps; ++t) out[r + s.off[t]] += lambda * s.weight * s.coef[t] * s.coef[t];
    });
}

void sample_line(const double* coef, int64_t n, double x, double& v, double& dv) {
  double w[4], dw[4];
  kernel_weights<3, double>(x, w, dw);
  const int64_t s = int64_t(std::floor(x)) - 1;
  v = dv = 0;
  const int64_t period = 2 * n - 2;
  for (int k = 0; k < 4; ++k) {
    int64_t j = s + k;
    if (n == 1) {
      j = 0;
    } else if (j < 0 || j >= n) { // whole-sample mirror, as the coefficients were prefiltered
      j = std::abs(j) % period;
      if (j >= n) j = period - j;
    }
    v += w[k] * coef[j];
    dv += dw[k] * coef[j];
  }
}

} // namespace voxalign::sdc_detail
