// Registration metrics with exact gradients (docs/register.md).
//
// One pass interpolates the moving image (value and gradient) at every fixed sample mapped through
// Mvox; each metric then gives its value and w_i = dE/dm_i per sample; one reduction forms
// G(a, b) = sum_i w_i (dm/dp_a)_i xh_(i,b), the gradient with respect to the voxel->voxel matrix.
// Every sum is taken per fixed block of samples and combined in block order: bit-identical for
// any number of threads.
#include <algorithm>
#include <cmath>
#include <vector>

#include "voxalign/kernel/cpu/evaluate.hpp"
#include "voxalign/register/engine.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"

namespace voxalign::reg {
namespace {

constexpr int64_t kBlock = 4096;

/// Sum `width` accumulators over fixed blocks of [0, n): fn(begin, end, acc) adds into acc.
template <class F> std::vector<double> block_reduce(int64_t n, int width, F&& fn, int64_t block = kBlock) {
  const int64_t nblocks = (n + block - 1) / block;
  std::vector<double> part(static_cast<size_t>(nblocks * width), 0.0);
  parallel_for(nblocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk)
      fn(blk * block, std::min(n, (blk + 1) * block), part.data() + blk * width);
  });
  std::vector<double> acc(static_cast<size_t>(width), 0.0);
  for (int64_t blk = 0; blk < nblocks; ++blk)
    for (int w = 0; w < width; ++w) acc[static_cast<size_t>(w)] += part[static_cast<size_t>(blk * width + w)];
  return acc;
}

/// Interpolate the moving image at every sample. clamp: points outside the moving grid are
/// clamped to it (the function extended as a constant along that axis: zero derivative there) and
/// still evaluated (lncc); otherwise they are marked invalid.
template <int K, int D> void sample_moving(const Level& L, const Mat4& M, bool clamp, Samples& s) {
  const Coefficients<float>& c = L.coef;
  const Geometry& cg = c.image.geometry();
  const int64_t* cd = cg.dims.data();
  const int64_t cs[4] = {1, cd[0], cd[0] * cd[1], cd[0] * cd[1] * cd[2]};
  int64_t n[3];
  for (int d = 0; d < 3; ++d) n[d] = d < D ? cd[d] - 2 * c.pad : 1;
  const float* coef = c.image.data();
  const int64_t N = L.count;
  s.m.resize(static_cast<size_t>(N));
  s.g.resize(static_cast<size_t>(3 * N));
  s.ok.resize(static_cast<size_t>(N));
  const Image<float>* mm = L.moving_mask;
  const Mat4 Q = L.level_to_mask;
  parallel_for(N, kBlock, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double x0 = L.pos[static_cast<size_t>(3 * i)], x1 = L.pos[static_cast<size_t>(3 * i + 1)],
                   x2 = L.pos[static_cast<size_t>(3 * i + 2)];
      double p[3];
      for (int a = 0; a < 3; ++a) p[a] = M(a, 0) * x0 + M(a, 1) * x1 + M(a, 2) * x2 + M(a, 3);
      bool inside = true, clamped[3] = {false, false, false};
      for (int d = 0; d < D; ++d) {
        if (!(p[d] >= -0.5 && p[d] <= double(n[d]) - 0.5)) inside = false;
        if (clamp && !(p[d] >= 0.0 && p[d] <= double(n[d] - 1))) {
          p[d] = std::isfinite(p[d]) ? std::clamp(p[d], 0.0, double(n[d] - 1)) : 0.0;
          clamped[d] = true;
        }
      }
      float* gi = s.g.data() + 3 * i;
      if (inside && mm) {
        const Geometry& mg = mm->geometry();
        int64_t q[3];
        for (int a = 0; a < 3; ++a) {
          q[a] = a < D ? int64_t(std::llround(Q(a, 0) * p[0] + Q(a, 1) * p[1] + Q(a, 2) * p[2] + Q(a, 3))) : 0;
          if (q[a] < 0 || q[a] >= mg.dims[a]) inside = false;
        }
        if (inside) inside = mm->data()[q[0] + mg.dims[0] * (q[1] + mg.dims[1] * q[2])] != 0.0f;
      }
      if (inside && !L.mfill.bits.empty()) { // the stencil must not reach fill (nearest level voxel clean)
        int64_t q[3] = {0, 0, 0};
        for (int d = 0; d < D; ++d) q[d] = std::min<int64_t>(int64_t(p[d] + 0.5), n[d] - 1); // p >= -0.5 here
        inside = L.mfill.clean(q[0], q[1], q[2]);
      }
      s.ok[static_cast<size_t>(i)] = inside;
      if (!inside && !clamp) {
        s.m[static_cast<size_t>(i)] = 0.0f;
        gi[0] = gi[1] = gi[2] = 0.0f;
        continue;
      }
      float grad[3] = {0, 0, 0};
      s.m[static_cast<size_t>(i)] =
          detail::evaluate_point<K, D, float, true>(coef, cd, cs, p, c.mode, c.pad, float(c.cval), grad);
      for (int d = 0; d < 3; ++d) gi[d] = d < D && !clamped[d] ? grad[d] : 0.0f;
    }
  });
}

/// G(a, b) = sum_i w_i g_(i,a) xh_(i,b) over valid samples (all samples when all_samples).
std::vector<double> chain(const Level& L, const Samples& s, const std::vector<double>& w, bool all_samples) {
  const int D = L.ndim, nb = D * (D + 1);
  return block_reduce(L.count, nb, [&](int64_t b, int64_t e, double* acc) {
    for (int64_t i = b; i < e; ++i) {
      if (!all_samples && !s.ok[static_cast<size_t>(i)]) continue;
      const double wi = w[static_cast<size_t>(i)];
      if (wi == 0.0) continue;
      double xh[4];
      for (int d = 0; d < D; ++d) xh[d] = L.pos[static_cast<size_t>(3 * i + d)];
      xh[D] = 1.0;
      for (int a = 0; a < D; ++a) {
        const double ga = wi * s.g[static_cast<size_t>(3 * i + a)];
        for (int q = 0; q <= D; ++q) acc[a * (D + 1) + q] += ga * xh[q];
      }
    }
  });
}

void eval_ssd(const Level& L, const Samples& s, bool grad, bool gn, Evaluation& ev) {
  const int D = L.ndim, nb = D * (D + 1);
  const int width = 2 + (grad ? nb : 0) + (gn ? nb * nb : 0);
  const std::vector<double> acc = block_reduce(L.count, width, [&](int64_t b, int64_t e, double* a) {
    double v[12];
    for (int64_t i = b; i < e; ++i) {
      if (!s.ok[static_cast<size_t>(i)]) continue;
      const double r = double(s.m[static_cast<size_t>(i)]) - double(L.fval[static_cast<size_t>(i)]);
      a[0] += r * r;
      a[1] += 1.0;
      if (!grad) continue;
      double xh[4];
      for (int d = 0; d < D; ++d) xh[d] = L.pos[static_cast<size_t>(3 * i + d)];
      xh[D] = 1.0;
      for (int p = 0; p < D; ++p)
        for (int q = 0; q <= D; ++q) v[p * (D + 1) + q] = double(s.g[static_cast<size_t>(3 * i + p)]) * xh[q];
      for (int k = 0; k < nb; ++k) a[2 + k] += v[k] * r;
      if (gn) {
        double* H = a + 2 + nb;
        for (int k = 0; k < nb; ++k)
          for (int l = k; l < nb; ++l) H[k * nb + l] += v[k] * v[l];
      }
    }
  });
  ev.valid = int64_t(acc[1]);
  const double N = std::max(acc[1], 1.0);
  ev.value = 0.5 * acc[0] / N;
  if (grad) {
    ev.G.assign(acc.begin() + 2, acc.begin() + 2 + nb);
    for (double& g : ev.G) g /= N;
  }
  if (gn) {
    ev.H.assign(static_cast<size_t>(nb * nb), 0.0);
    for (int k = 0; k < nb; ++k)
      for (int l = k; l < nb; ++l)
        ev.H[static_cast<size_t>(k * nb + l)] = ev.H[static_cast<size_t>(l * nb + k)] =
            acc[static_cast<size_t>(2 + nb + k * nb + l)] / N;
  }
}

void eval_ncc(const Level& L, const Samples& s, bool grad, Evaluation& ev) {
  const std::vector<double> a = block_reduce(L.count, 6, [&](int64_t b, int64_t e, double* acc) {
    for (int64_t i = b; i < e; ++i) {
      if (!s.ok[static_cast<size_t>(i)]) continue;
      const double m = s.m[static_cast<size_t>(i)], f = L.fval[static_cast<size_t>(i)];
      acc[0] += 1, acc[1] += m, acc[2] += f, acc[3] += m * m, acc[4] += f * f, acc[5] += m * f;
    }
  });
  ev.valid = int64_t(a[0]);
  const double N = std::max(a[0], 1.0), mu_m = a[1] / N, mu_f = a[2] / N;
  const double Smm = a[3] - N * mu_m * mu_m, Sff = a[4] - N * mu_f * mu_f, Smf = a[5] - N * mu_m * mu_f;
  if (!(Smm > 0 && Sff > 0)) { // constant image over the overlap: NCC undefined, treat as 0
    ev.value = 0.0;
    if (grad) ev.G.assign(static_cast<size_t>(L.ndim * (L.ndim + 1)), 0.0);
    return;
  }
  const double den = std::sqrt(Smm * Sff), ncc = Smf / den;
  ev.value = -ncc;
  if (!grad) return;
  // d ncc / d m_i = (f_i - mu_f) / den - ncc (m_i - mu_m) / Smm  (the mean terms cancel)
  std::vector<double> w(static_cast<size_t>(L.count), 0.0);
  for (int64_t i = 0; i < L.count; ++i)
    if (s.ok[static_cast<size_t>(i)])
      w[static_cast<size_t>(i)] = -((L.fval[static_cast<size_t>(i)] - mu_f) / den -
                                    ncc * (s.m[static_cast<size_t>(i)] - mu_m) / Smm);
  ev.G = chain(L, s, w, false);
}

void eval_mi(const Level& L, const Samples& s, bool grad, Evaluation& ev) {
  // Mattes: fixed values binned with a box window, moving with a cubic B-spline window; two bins
  // of padding on each side so the window never leaves the histogram.
  const int B = L.bins;
  const double bwf = std::max(L.fmax - L.fmin, 1e-12) / (B - 4), bwm = std::max(L.mmax - L.mmin, 1e-12) / (B - 4);
  auto fbin = [&](double f) { return std::clamp(int(std::floor((f - L.fmin) / bwf)) + 2, 2, B - 3); };
  auto mpos = [&](double m, bool& clamped) {
    const double u = (m - L.mmin) / bwm + 2.0, lo = 1.0, hi = B - 2 - 1e-6;
    clamped = !(u >= lo && u <= hi);
    return std::clamp(std::isfinite(u) ? u : lo, lo, hi);
  };
  std::vector<double> P = block_reduce(L.count, B * B + 1, [&](int64_t b, int64_t e, double* h) {
    for (int64_t i = b; i < e; ++i) {
      if (!s.ok[static_cast<size_t>(i)]) continue;
      const int l = fbin(L.fval[static_cast<size_t>(i)]);
      bool cl;
      const double u = mpos(s.m[static_cast<size_t>(i)], cl);
      const int k0 = int(std::floor(u)) - 1;
      for (int k = k0; k < k0 + 4; ++k) h[l * B + k] += beta3(k - u);
      h[B * B] += 1;
    }
  }, 64 * kBlock); // large blocks: one B x B histogram per 2^18 samples bounds the memory
  ev.valid = int64_t(P[static_cast<size_t>(B * B)]);
  const double N = std::max(P[static_cast<size_t>(B * B)], 1.0);
  std::vector<double> pl(static_cast<size_t>(B), 0.0), pk(static_cast<size_t>(B), 0.0);
  for (int l = 0; l < B; ++l)
    for (int k = 0; k < B; ++k) {
      double& p = P[static_cast<size_t>(l * B + k)];
      p /= N;
      pl[static_cast<size_t>(l)] += p;
      pk[static_cast<size_t>(k)] += p;
    }
  double mi = 0;
  std::vector<double> logratio(static_cast<size_t>(B * B), 0.0); // log p_lk - log p_k
  for (int l = 0; l < B; ++l)
    for (int k = 0; k < B; ++k) {
      const double p = P[static_cast<size_t>(l * B + k)];
      if (p <= 0) continue;
      mi += p * std::log(p / (pl[static_cast<size_t>(l)] * pk[static_cast<size_t>(k)]));
      logratio[static_cast<size_t>(l * B + k)] = std::log(p) - std::log(pk[static_cast<size_t>(k)]);
    }
  ev.value = -mi;
  if (!grad) return;
  std::vector<double> w(static_cast<size_t>(L.count), 0.0);
  parallel_for(L.count, kBlock, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (!s.ok[static_cast<size_t>(i)]) continue;
      const int l = fbin(L.fval[static_cast<size_t>(i)]);
      bool cl;
      const double u = mpos(s.m[static_cast<size_t>(i)], cl);
      if (cl) continue;
      const int k0 = int(std::floor(u)) - 1;
      double d = 0;
      for (int k = k0; k < k0 + 4; ++k) d += -dbeta3(k - u) * logratio[static_cast<size_t>(l * B + k)];
      w[static_cast<size_t>(i)] = -d / (N * bwm);
    }
  });
  ev.G = chain(L, s, w, false);
}

/// In-place box sums over the window [x - r, x + r] (truncated at the edges) along every axis of
/// a dense 3D array.
void box_sum(std::vector<double>& a, const int64_t* dims, int r) {
  for (int axis = 0; axis < 3; ++axis) {
    const int64_t n = dims[axis];
    if (n == 1) continue;
    const int64_t stride = axis == 0 ? 1 : axis == 1 ? dims[0] : dims[0] * dims[1];
    const int64_t lines = dims[0] * dims[1] * dims[2] / n;
    parallel_for(lines, 64, [&](int64_t b, int64_t e) {
      std::vector<double> pre(static_cast<size_t>(n + 1));
      for (int64_t line = b; line < e; ++line) {
        int64_t base;
        if (axis == 0) base = line * n;
        else if (axis == 1) base = (line / dims[0]) * dims[0] * dims[1] + line % dims[0];
        else base = line;
        pre[0] = 0;
        for (int64_t q = 0; q < n; ++q) pre[static_cast<size_t>(q + 1)] = pre[static_cast<size_t>(q)] + a[static_cast<size_t>(base + q * stride)];
        for (int64_t q = 0; q < n; ++q) {
          const int64_t lo = std::max<int64_t>(0, q - r), hi = std::min<int64_t>(n - 1, q + r);
          a[static_cast<size_t>(base + q * stride)] = pre[static_cast<size_t>(hi + 1)] - pre[static_cast<size_t>(lo)];
        }
      }
    });
  }
}

void eval_lncc(const Level& L, const Samples& s, bool grad, Evaluation& ev) {
  const int64_t N = L.count, r = L.radius;
  const int64_t* dims = L.dims;
  // Subtracting global means changes no local statistic but keeps the sums well conditioned.
  double mf = 0, mm = 0;
  for (int64_t i = 0; i < N; ++i) mf += L.fval[static_cast<size_t>(i)], mm += s.m[static_cast<size_t>(i)];
  mf /= double(N), mm /= double(N);
  std::vector<double> f(static_cast<size_t>(N)), m(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) f[static_cast<size_t>(i)] = L.fval[static_cast<size_t>(i)] - mf, m[static_cast<size_t>(i)] = s.m[static_cast<size_t>(i)] - mm;
  std::vector<double> Sf = f, Sm = m, Sff(static_cast<size_t>(N)), Smm(static_cast<size_t>(N)), Sfm(static_cast<size_t>(N));
  double varf = 0;
  for (int64_t i = 0; i < N; ++i) {
    const size_t u = static_cast<size_t>(i);
    Sff[u] = f[u] * f[u], Smm[u] = m[u] * m[u], Sfm[u] = f[u] * m[u];
    varf += Sff[u];
  }
  varf /= double(N);
  for (auto* v : {&Sf, &Sm, &Sff, &Smm, &Sfm}) box_sum(*v, dims, int(r));
  auto count = [&](int64_t i) {
    int64_t idx[3] = {i % dims[0], (i / dims[0]) % dims[1], i / (dims[0] * dims[1])};
    double c = 1;
    for (int d = 0; d < 3; ++d)
      c *= double(std::min(dims[d] - 1, idx[d] + r) - std::max<int64_t>(0, idx[d] - r) + 1);
    return c;
  };
  // cc = A^2 / ((B + eb)(C + ec)) with eb, ec a thousandth of the global variance (of the fixed samples, of the moving
  // level image: constants) per window voxel: smooth everywhere (no threshold that switches windows on and off), and flat windows
  // (background) count for nothing instead of amplifying rounding.
  const double ef = 1e-3 * std::max(varf, 1e-30), em = 1e-3 * std::max(L.mvar, 1e-30);
  std::vector<double> alpha(static_cast<size_t>(N), 0.0), beta(static_cast<size_t>(N), 0.0);
  const std::vector<double> acc = block_reduce(N, 2, [&](int64_t b, int64_t e, double* a) {
    for (int64_t i = b; i < e; ++i) {
      const size_t u = static_cast<size_t>(i);
      if (!s.ok[u] || !L.inmask[u]) continue;
      const double n = count(i);
      const double A = Sfm[u] - Sf[u] * Sm[u] / n, Bv = Sff[u] - Sf[u] * Sf[u] / n + ef * n,
                   C = Smm[u] - Sm[u] * Sm[u] / n + em * n;
      a[1] += 1;
      a[0] += A * A / (Bv * C);
      alpha[u] = 2 * A / (Bv * C);
      beta[u] = A / C;
    }
  });
  ev.valid = int64_t(acc[1]);
  const double Nc = std::max(acc[1], 1.0);
  ev.value = -acc[0] / Nc;
  if (!grad) return;
  std::vector<double> b1 = alpha, b2(static_cast<size_t>(N)), b3(static_cast<size_t>(N)), b4(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    const size_t u = static_cast<size_t>(i);
    const double n = count(i);
    b2[u] = alpha[u] * Sf[u] / n;
    b3[u] = alpha[u] * beta[u];
    b4[u] = alpha[u] * beta[u] * Sm[u] / n;
  }
  for (auto* v : {&b1, &b2, &b3, &b4}) box_sum(*v, dims, int(r));
  std::vector<double> w(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    const size_t u = static_cast<size_t>(i);
    w[u] = -(f[u] * b1[u] - b2[u] - m[u] * b3[u] + b4[u]) / Nc;
  }
  ev.G = chain(L, s, w, true);
}

} // namespace

Evaluation evaluate_metric(const Level& L, Metric metric, const Mat4& Mvox, bool gradient, bool gauss_newton) {
  Samples& s = L.scratch; // reused between evaluations: no fresh pages per call
  const bool clamp = metric == Metric::LNCC;
  detail::dispatch_kernel(L.coef.order, L.ndim, [&]<int K, int D>() {
    if constexpr (D >= 2) sample_moving<K, D>(L, Mvox, clamp, s);
  });
  Evaluation ev;
  switch (metric) {
  case Metric::SSD: eval_ssd(L, s, gradient, gauss_newton, ev); break;
  case Metric::NCC: eval_ncc(L, s, gradient, ev); break;
  case Metric::MI: eval_mi(L, s, gradient, ev); break;
  case Metric::LNCC: eval_lncc(L, s, gradient, ev); break;
  }
  return ev;
}

} // namespace voxalign::reg
