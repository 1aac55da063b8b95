// The SyN metrics (ssd, lncc, mi) between the two warped images and their exact gradients with respect to
// both half-way fields, plus the field operations the SyN driver needs (smoothing, composition,
// resampling onto another grid). Every loop runs over fixed blocks of rows: bit-identical for any
// thread count.
#include "syn_internal.hpp"

#include <algorithm>
#include <cmath>

#include "voxalign/core/error.hpp"
#include "voxalign/register/engine.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/warp/warp.hpp"

namespace voxalign::syn {
namespace {

/// Box sums over clipped windows of radius r (the same window set for every voxel: the operator is
/// symmetric, which the lncc gradient relies on), in place, axis by axis with running sums. Along axes
/// 1 and 2, L neighbouring lines (along axis 0) run together so that reads fetch whole cache lines;
/// every line's sums are the same additions in the same order either way.
void box_sum(std::vector<double>& a, const int64_t* n, int r) {
  constexpr int64_t L = 16;
  for (int ax = 0; ax < 3; ++ax) {
    const int64_t len = n[ax];
    if (len == 1) continue;
    const int64_t stride = ax == 0 ? 1 : ax == 1 ? n[0] : n[0] * n[1];
    const int64_t lanes = ax == 0 ? 1 : n[0], lines = n[0] * n[1] * n[2] / len;
    const int64_t groups = (lanes + L - 1) / L, jobs = lines / lanes * groups; // lanes share a plane
    parallel_for(jobs, ax == 0 ? kLineGrain : 4, [&](int64_t l0, int64_t l1) {
      std::vector<double> pre(static_cast<size_t>((len + 1) * L));
      for (int64_t job = l0; job < l1; ++job) {
        double* p;
        int64_t nl;
        if (ax == 0) {
          p = a.data() + (job % n[1]) * n[0] + (job / n[1]) * n[0] * n[1], nl = 1;
        } else {
          const int64_t plane = job / groups, i0 = (job % groups) * L;
          p = a.data() + i0 + plane * (ax == 1 ? n[0] * n[1] : n[0]), nl = std::min(L, lanes - i0);
        }
        for (int64_t l = 0; l < nl; ++l) pre[size_t(l)] = 0;
        for (int64_t i = 0; i < len; ++i)
          for (int64_t l = 0; l < nl; ++l) pre[size_t((i + 1) * L + l)] = pre[size_t(i * L + l)] + p[i * stride + l];
        for (int64_t i = 0; i < len; ++i) {
          const double* hi = pre.data() + std::min(i + r + 1, len) * L;
          const double* lo = pre.data() + std::max<int64_t>(i - r, 0) * L;
          for (int64_t l = 0; l < nl; ++l) p[i * stride + l] = hi[l] - lo[l];
        }
      }
    });
  }
}

int64_t window_count(int64_t i, int64_t len, int r) { return std::min(i + r, len - 1) - std::max<int64_t>(i - r, 0) + 1; }

/// Sum of f over [0, n) in fixed blocks, combined in block order.
template <class F> double block_sum(int64_t n, F&& f) {
  const int64_t nb = (n + kVoxGrain - 1) / kVoxGrain;
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
  parallel_for(n, kVoxGrain, [&](int64_t a, int64_t b) {
    double s = 0;
    for (int64_t q = a; q < b; ++q) s += f(q);
    part[static_cast<size_t>(a / kVoxGrain)] = s;
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

/// E = -(1/N) sum_x cc(x) over windows of radius r (cc regularised below), and dE/df, dE/dm per voxel (exact: every window
/// a voxel belongs to contributes).
double lncc(const float* f, const float* m, const int64_t* n, int r, double varf, double varm, const uint8_t* mask,
            int64_t count, std::vector<std::vector<double>>& t, float* df, float* dm) {
  const int64_t N = n[0] * n[1] * n[2];
  const double meanf = block_sum(N, [&](int64_t q) { return double(f[q]); }) / double(N);
  const double meanm = block_sum(N, [&](int64_t q) { return double(m[q]); }) / double(N);
  // Regularised cc = P^2 / ((Q + n epsf)(R + n epsm)): smooth everywhere, and ~0 in flat windows,
  // whose plain correlation is a ratio of rounding errors. varf, varm: of the level images (constants).
  const double epsf = 1e-3 * varf + 1e-30, epsm = 1e-3 * varm + 1e-30;
  // t: 7 arrays of N kept by the caller across iterations (fresh pages cost as much as the sums);
  // the first 5 hold the window sums, then every voxel's 7 coefficients replace its sums in place.
  t.resize(7);
  for (auto& v : t) v.resize(static_cast<size_t>(N));
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    for (int64_t q = a; q < b; ++q) {
      const double fv = f[q] - meanf, mv = m[q] - meanm; // centred: less cancellation below
      t[0][q] = fv, t[1][q] = mv, t[2][q] = fv * fv, t[3][q] = mv * mv, t[4][q] = fv * mv;
    }
  });
  for (int a = 0; a < 5; ++a) box_sum(t[size_t(a)], n, r);
  // Per window: A = 2P/(QR), B = A P/R, B' = A P/Q with P = sfm', Q = sff', R = smm' (centred sums).
  // Blocks of kVoxGrain voxels summed in order, then the blocks in order (as block_sum).
  std::vector<int64_t> cnt_axis[3];
  for (int d = 0; d < 3; ++d) {
    cnt_axis[d].resize(size_t(n[d]));
    for (int64_t i = 0; i < n[d]; ++i) cnt_axis[d][size_t(i)] = window_count(i, n[d], r);
  }
  std::vector<double> part(size_t((N + kVoxGrain - 1) / kVoxGrain), 0.0);
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    double sum = 0;
    VoxelIndex v(a, n);
    for (int64_t q = a; q < b; ++q, v.next()) {
      const double cnt = double(cnt_axis[0][size_t(v.i)] * cnt_axis[1][size_t(v.j)] * cnt_axis[2][size_t(v.k)]);
      const double s0 = t[0][q], s1 = t[1][q], s2 = t[2][q], s3 = t[3][q], s4 = t[4][q];
      const double mf = s0 / cnt, mm = s1 / cnt;
      const double Q = s2 - s0 * mf + epsf * cnt, R = s3 - s1 * mm + epsm * cnt;
      const double P = s4 - s0 * mm;
      if (mask && !mask[q]) { // a window centred outside the mask adds nothing
        for (auto& w : t) w[q] = 0;
        continue;
      }
      const double cc = P * P / (Q * R), A = 2 * P / (Q * R), B = A * P / R, Bp = A * P / Q;
      t[0][q] = A, t[1][q] = A * mf, t[2][q] = A * mm, t[3][q] = B, t[4][q] = B * mm, t[5][q] = Bp, t[6][q] = Bp * mf;
      sum += cc;
    }
    part[size_t(a / kVoxGrain)] = sum;
  });
  double cc_sum = 0;
  for (double p : part) cc_sum += p;
  for (auto& v : t) box_sum(v, n, r);
  const double c = -1.0 / double(count);
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    for (int64_t q = a; q < b; ++q) {
      const double fv = f[q] - meanf, mv = m[q] - meanm;
      dm[q] = float(c * (fv * t[0][q] - t[1][q] - mv * t[3][q] + t[4][q]));
      df[q] = float(c * (mv * t[0][q] - t[2][q] - fv * t[5][q] + t[6][q]));
    }
  });
  return c * cc_sum;
}

double ssd(const float* f, const float* m, int64_t N, const uint8_t* mask, int64_t count, float* df, float* dm) {
  const double c = 1.0 / double(count);
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    for (int64_t q = a; q < b; ++q) {
      const double d = mask && !mask[q] ? 0.0 : double(m[q]) - double(f[q]);
      dm[q] = float(c * d), df[q] = float(-c * d);
    }
  });
  return 0.5 * c * block_sum(N, [&](int64_t q) {
           return mask && !mask[q] ? 0.0 : (double(m[q]) - double(f[q])) * (double(m[q]) - double(f[q]));
         });
}

/// Histogram position of value v on an axis of B bins whose [lo, hi] spans bins 2 .. B-3 (two bins of
/// padding: the cubic window stays inside); values beyond are clamped (and have no derivative).
struct Axis {
  double lo, width;
  int B;
  double pos(double v, bool& clamped) const {
    const double u = (v - lo) / width + 2.0, a = 1.0, b = B - 2 - 1e-9;
    clamped = !(u >= a && u <= b);
    return std::clamp(std::isfinite(u) ? u : a, a, b);
  }
};

/// E = -MI of f and m (Parzen windows: cubic B-splines on both axes, so both values have exact
/// derivatives), over the voxels in the mask, and dE/df, dE/dm per voxel:
///   dE/dm_x = 1/(N w_m) sum_lk beta(l - a_x) beta'(k - b_x) (log p_lk - log p_k)   (and f alike),
/// the marginal-only terms vanishing because the window derivatives sum to zero.
double mi(const float* f, const float* m, int64_t N, const uint8_t* mask, int64_t count, const LevelImages& L, int B,
          float* df, float* dm) {
  const Axis af{L.fmin, std::max(L.fmax - L.fmin, 1e-12) / (B - 4), B};
  const Axis am{L.mmin, std::max(L.mmax - L.mmin, 1e-12) / (B - 4), B};
  const int64_t BB = int64_t(B) * B, block = 16 * kVoxGrain; // one B x B histogram per block
  const int64_t nb = (N + block - 1) / block;
  std::vector<double> part(static_cast<size_t>(nb * BB), 0.0);
  parallel_for(N, block, [&](int64_t a, int64_t b) {
    double* h = part.data() + (a / block) * BB;
    for (int64_t q = a; q < b; ++q) {
      if (mask && !mask[q]) continue;
      bool c;
      const double u = af.pos(f[q], c), v = am.pos(m[q], c);
      const int l0 = int(std::floor(u)) - 1, k0 = int(std::floor(v)) - 1;
      double wl[4], wk[4];
      for (int t = 0; t < 4; ++t) wl[t] = reg::beta3(l0 + t - u), wk[t] = reg::beta3(k0 + t - v);
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) h[(l0 + i) * B + k0 + j] += wl[i] * wk[j];
    }
  });
  std::vector<double> P(static_cast<size_t>(BB), 0.0), pl(size_t(B), 0.0), pk(size_t(B), 0.0);
  for (int64_t blk = 0; blk < nb; ++blk)
    for (int64_t i = 0; i < BB; ++i) P[size_t(i)] += part[size_t(blk * BB + i)];
  const double Nc = double(count);
  for (int l = 0; l < B; ++l)
    for (int k = 0; k < B; ++k) {
      double& p = P[size_t(l * B + k)];
      p /= Nc;
      pl[size_t(l)] += p, pk[size_t(k)] += p;
    }
  double value = 0;
  std::vector<double> lf(size_t(BB), 0.0), lm(size_t(BB), 0.0); // log p_lk - log p_l, log p_lk - log p_k
  for (int l = 0; l < B; ++l)
    for (int k = 0; k < B; ++k) {
      const double p = P[size_t(l * B + k)];
      if (!(p > 0)) continue;
      value += p * std::log(p / (pl[size_t(l)] * pk[size_t(k)]));
      lf[size_t(l * B + k)] = std::log(p) - std::log(pl[size_t(l)]);
      lm[size_t(l * B + k)] = std::log(p) - std::log(pk[size_t(k)]);
    }
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    for (int64_t q = a; q < b; ++q) {
      df[q] = dm[q] = 0.0f;
      if (mask && !mask[q]) continue;
      bool cf, cm;
      const double u = af.pos(f[q], cf), v = am.pos(m[q], cm);
      const int l0 = int(std::floor(u)) - 1, k0 = int(std::floor(v)) - 1;
      double wl[4], wk[4], dl[4], dk[4];
      for (int t = 0; t < 4; ++t) {
        wl[t] = reg::beta3(l0 + t - u), wk[t] = reg::beta3(k0 + t - v);
        dl[t] = reg::dbeta3(l0 + t - u), dk[t] = reg::dbeta3(k0 + t - v);
      }
      double gf = 0, gm = 0;
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          const size_t c = size_t((l0 + i) * B + k0 + j);
          gf += dl[i] * wk[j] * lf[c], gm += wl[i] * dk[j] * lm[c];
        }
      if (!cf) df[q] = float(gf / (Nc * af.width));
      if (!cm) dm[q] = float(gm / (Nc * am.width));
    }
  });
  return -value;
}

/// The image of `c` at p(x) = P (x_world + u(x)) (P: world -> the image's voxels) for every voxel x of
/// `grid`, and its gradient in world mm with respect to u (J^T grad_vox, J = P's linear part).
void warped(const Coefficients<float>& c, const Geometry& grid, const Mat4& P, const Image<float>& u, Image<float>& val,
            Image<float>& grad) {
  Geometry g1 = grid, g3 = grid;
  g1.dims[3] = 1, g1.ndim = 3;
  g3.dims[3] = 3, g3.ndim = 4;
  Image<float> field(g3, no_init);
  const Mat4 M = P * grid.affine; // grid voxel -> image voxel
  const Eigen::Matrix3d L = P.topLeftCorner<3, 3>();
  const int64_t* n = grid.dims.data();
  const int64_t N = n[0] * n[1] * n[2];
  const float* ud = u.data();
  float* fd = field.data();
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    VoxelIndex v(a, n);
    for (int64_t q = a; q < b; ++q, v.next()) {
      const Eigen::Vector3d x = v.point();
      const Eigen::Vector3d um{ud[q], ud[q + N], ud[q + 2 * N]};
      const Eigen::Vector3d p = M.topLeftCorner<3, 3>() * x + M.topRightCorner<3, 1>() + L * um;
      for (int d = 0; d < 3; ++d) fd[q + d * N] = float(p[d] - x[d]);
    }
  });
  val = Image<float>(g1, no_init);
  grad = Image<float>(g3, no_init);
  warp_displacement_gradient<float>(c, field.view(), val.view(), grad.view());
  float* gd = grad.data();
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    for (int64_t q = a; q < b; ++q) {
      const Eigen::Vector3d gv{gd[q], gd[q + N], gd[q + 2 * N]};
      const Eigen::Vector3d gw = L.transpose() * gv;
      for (int d = 0; d < 3; ++d) gd[q + d * N] = float(gw[d]);
    }
  });
}

} // namespace

double variance(const Image<float>& im) {
  const int64_t N = im.size();
  const float* d = im.data();
  const double mean = block_sum(N, [&](int64_t q) { return double(d[q]); }) / double(N);
  return block_sum(N, [&](int64_t q) { return (d[q] - mean) * (d[q] - mean); }) / double(N);
}

double level_metric(const LevelImages& L, const Mat4& affine, const Image<float>& u1, const Image<float>& u2,
                    const SynOptions& o, Image<float>* g1, Image<float>* g2) {
  const Geometry& grid = L.grid;
  Image<float> fw, gf, mw, gm;
  warped(L.cf, grid, L.fixed_world_to_voxel, u1, fw, gf);
  warped(L.cm, grid, L.moving_world_to_voxel * affine, u2, mw, gm);
  const int64_t* n = grid.dims.data();
  const int64_t N = n[0] * n[1] * n[2];
  std::vector<float> df(static_cast<size_t>(N)), dm(static_cast<size_t>(N));
  const uint8_t* mask = L.mask.empty() ? nullptr : L.mask.data();
  const int64_t count =
      mask ? std::max<int64_t>(1, int64_t(std::count(L.mask.begin(), L.mask.end(), uint8_t(1)))) : N;
  const double E =
      o.metric == Metric::SSD ? ssd(fw.data(), mw.data(), N, mask, count, df.data(), dm.data())
      : o.metric == Metric::MI
          ? mi(fw.data(), mw.data(), N, mask, count, L, o.bins, df.data(), dm.data())
          : lncc(fw.data(), mw.data(), n, o.radius, L.varf, L.varm, mask, count, L.scratch, df.data(), dm.data());
  auto chain = [&](Image<float>* g, const Image<float>& grad, const std::vector<float>& dv) {
    if (!g) return;
    *g = Image<float>(grad.geometry(), no_init);
    float* o = g->data();
    const float* gi = grad.data();
    parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
      for (int64_t q = a; q < b; ++q)
        for (int d = 0; d < 3; ++d) o[q + d * N] = dv[size_t(q)] * gi[q + d * N];
    });
  };
  chain(g1, gf, df);
  chain(g2, gm, dm);
  return E;
}

void smooth_field(Image<float>& u, double sigma_vox) {
  if (!(sigma_vox > 0)) return;
  Geometry g1 = u.geometry();
  g1.dims[3] = 1, g1.ndim = 3;
  const int64_t N = g1.frame_size();
  const double s[3] = {sigma_vox, sigma_vox, sigma_vox};
  for (int d = 0; d < 3; ++d) {
    Image<float> c(g1, no_init);
    std::copy(u.data() + d * N, u.data() + (d + 1) * N, c.data());
    const Image<float> sm = reg::gaussian_smooth(c, s);
    std::copy(sm.data(), sm.data() + N, u.data() + d * N);
  }
}

void compose_update(Image<float>& u, const Image<float>& delta) {
  const Geometry& g = u.geometry();
  const int64_t* n = g.dims.data();
  const int64_t N = g.frame_size();
  const Eigen::Matrix3d Linv = g.affine.topLeftCorner<3, 3>().inverse();
  Image<float> out(g, no_init);
  const float* ud = u.data();
  const float* dd = delta.data();
  float* od = out.data();
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    VoxelIndex v(a, n);
    for (int64_t q = a; q < b; ++q, v.next()) {
      const Eigen::Vector3d x = v.point();
      const Eigen::Vector3d dv{dd[q], dd[q + N], dd[q + 2 * N]};
      const Eigen::Vector3d r = dv + sample_field(ud, n, x + Linv * dv);
      for (int d = 0; d < 3; ++d) od[q + d * N] = float(r[d]);
    }
  });
  u = std::move(out);
}

Image<float> resample_field(const Image<float>& u, const Geometry& to) {
  Geometry g3 = to;
  g3.dims[3] = 3, g3.ndim = 4;
  Image<float> out(g3, no_init);
  const int64_t* n = to.dims.data();
  const int64_t N = to.frame_size();
  const Mat4 M = u.geometry().affine.inverse() * to.affine;
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    VoxelIndex v(a, n);
    for (int64_t q = a; q < b; ++q, v.next()) {
      const Eigen::Vector4d x{double(v.i), double(v.j), double(v.k), 1.0};
      const Eigen::Vector3d v = sample_field(u.data(), u.geometry().dims.data(), (M * x).head<3>());
      for (int d = 0; d < 3; ++d) out.data()[q + d * N] = float(v[d]);
    }
  });
  return out;
}

double max_voxel_norm(const Image<float>& u) {
  const int64_t N = u.geometry().frame_size();
  const Eigen::Matrix3d Linv = u.geometry().affine.topLeftCorner<3, 3>().inverse();
  const int64_t nb = (N + kVoxGrain - 1) / kVoxGrain;
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
  const float* d = u.data();
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    double m = 0;
    for (int64_t q = a; q < b; ++q) m = std::max(m, (Linv * Eigen::Vector3d(d[q], d[q + N], d[q + 2 * N])).norm());
    part[static_cast<size_t>(a / kVoxGrain)] = m;
  });
  return *std::max_element(part.begin(), part.end());
}

} // namespace voxalign::syn
