// The SyN metrics (ssd, lncc) between the two warped images and their exact gradients with respect to
// both half-way fields, plus the field operations the SyN driver needs (smoothing, composition,
// resampling onto another grid). Every loop runs over fixed blocks of rows: bit-identical for any
// thread count.
#include "syn_internal.hpp"

#include <algorithm>
#include <cmath>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/warp/warp.hpp"

namespace voxalign::syn {
namespace {

/// Box sums over clipped windows of radius r (the same window set for every voxel: the operator is
/// symmetric, which the lncc gradient relies on), in place, axis by axis with running sums.
void box_sum(std::vector<double>& a, const int64_t* n, int r) {
  for (int ax = 0; ax < 3; ++ax) {
    const int64_t len = n[ax];
    if (len == 1) continue;
    const int64_t stride = ax == 0 ? 1 : ax == 1 ? n[0] : n[0] * n[1];
    const int64_t o1 = ax == 0 ? n[1] : n[0], o2 = ax == 2 ? n[1] : n[2];
    const int64_t s1 = ax == 0 ? n[0] : 1, s2 = ax == 2 ? n[0] : n[0] * n[1];
    parallel_for(o1 * o2, kLineGrain, [&](int64_t l0, int64_t l1) {
      std::vector<double> pre(static_cast<size_t>(len + 1));
      for (int64_t l = l0; l < l1; ++l) {
        double* p = a.data() + (l % o1) * s1 + (l / o1) * s2;
        pre[0] = 0;
        for (int64_t i = 0; i < len; ++i) pre[size_t(i + 1)] = pre[size_t(i)] + p[i * stride];
        for (int64_t i = 0; i < len; ++i)
          p[i * stride] = pre[size_t(std::min(i + r + 1, len))] - pre[size_t(std::max<int64_t>(i - r, 0))];
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
double lncc(const float* f, const float* m, const int64_t* n, int r, double varf, double varm, float* df, float* dm) {
  const int64_t N = n[0] * n[1] * n[2];
  const double meanf = block_sum(N, [&](int64_t q) { return double(f[q]); }) / double(N);
  const double meanm = block_sum(N, [&](int64_t q) { return double(m[q]); }) / double(N);
  // Regularised cc = P^2 / ((Q + n epsf)(R + n epsm)): smooth everywhere, and ~0 in flat windows,
  // whose plain correlation is a ratio of rounding errors. varf, varm: of the level images (constants).
  const double epsf = 1e-3 * varf + 1e-30, epsm = 1e-3 * varm + 1e-30;
  std::vector<std::vector<double>> s(5, std::vector<double>(static_cast<size_t>(N)));
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    for (int64_t q = a; q < b; ++q) {
      const double fv = f[q] - meanf, mv = m[q] - meanm; // centred: less cancellation below
      s[0][q] = fv, s[1][q] = mv, s[2][q] = fv * fv, s[3][q] = mv * mv, s[4][q] = fv * mv;
    }
  });
  for (auto& v : s) box_sum(v, n, r);
  // Per window: A = 2P/(QR), B = A P/R, B' = A P/Q with P = sfm', Q = sff', R = smm' (centred sums).
  std::vector<std::vector<double>> t(7, std::vector<double>(static_cast<size_t>(N)));
  const double cc_sum = block_sum(N, [&](int64_t q) {
    const int64_t i = q % n[0], j = (q / n[0]) % n[1], k = q / (n[0] * n[1]);
    const double cnt = double(window_count(i, n[0], r) * window_count(j, n[1], r) * window_count(k, n[2], r));
    const double mf = s[0][q] / cnt, mm = s[1][q] / cnt;
    const double Q = s[2][q] - s[0][q] * mf + epsf * cnt, R = s[3][q] - s[1][q] * mm + epsm * cnt;
    const double P = s[4][q] - s[0][q] * mm;
    const double cc = P * P / (Q * R), A = 2 * P / (Q * R), B = A * P / R, Bp = A * P / Q;
    t[0][q] = A, t[1][q] = A * mf, t[2][q] = A * mm, t[3][q] = B, t[4][q] = B * mm, t[5][q] = Bp, t[6][q] = Bp * mf;
    return cc;
  });
  s.clear();
  for (auto& v : t) box_sum(v, n, r);
  const double c = -1.0 / double(N);
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    for (int64_t q = a; q < b; ++q) {
      const double fv = f[q] - meanf, mv = m[q] - meanm;
      dm[q] = float(c * (fv * t[0][q] - t[1][q] - mv * t[3][q] + t[4][q]));
      df[q] = float(c * (mv * t[0][q] - t[2][q] - fv * t[5][q] + t[6][q]));
    }
  });
  return c * cc_sum;
}

double ssd(const float* f, const float* m, int64_t N, float* df, float* dm) {
  const double c = 1.0 / double(N);
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    for (int64_t q = a; q < b; ++q) {
      const double d = double(m[q]) - double(f[q]);
      dm[q] = float(c * d), df[q] = float(-c * d);
    }
  });
  return 0.5 * c * block_sum(N, [&](int64_t q) { return (double(m[q]) - double(f[q])) * (double(m[q]) - double(f[q])); });
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
    for (int64_t q = a; q < b; ++q) {
      const Eigen::Vector3d x{double(q % n[0]), double((q / n[0]) % n[1]), double(q / (n[0] * n[1]))};
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
                    Metric metric, int radius, Image<float>* g1, Image<float>* g2) {
  const Geometry& grid = L.grid;
  Image<float> fw, gf, mw, gm;
  warped(L.cf, grid, L.fixed_world_to_voxel, u1, fw, gf);
  warped(L.cm, grid, L.moving_world_to_voxel * affine, u2, mw, gm);
  const int64_t* n = grid.dims.data();
  const int64_t N = n[0] * n[1] * n[2];
  std::vector<float> df(static_cast<size_t>(N)), dm(static_cast<size_t>(N));
  const double E = metric == Metric::SSD ? ssd(fw.data(), mw.data(), N, df.data(), dm.data())
                                         : lncc(fw.data(), mw.data(), n, radius, L.varf, L.varm, df.data(), dm.data());
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
    for (int64_t q = a; q < b; ++q) {
      const Eigen::Vector3d x{double(q % n[0]), double((q / n[0]) % n[1]), double(q / (n[0] * n[1]))};
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
    for (int64_t q = a; q < b; ++q) {
      const Eigen::Vector4d x{double(q % n[0]), double((q / n[0]) % n[1]), double(q / (n[0] * n[1])), 1.0};
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
