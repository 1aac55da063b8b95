// The SyN driver: pyramid, greedy symmetric iterations, inversion and composition of the half-way
// fields into the forward and inverse warps; the Jacobian determinant.
#include "voxalign/register/syn.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "voxalign/register/engine.hpp"
#include "syn_internal.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/warp/warp.hpp"

namespace voxalign {
namespace {
using namespace syn;

void check_options(const Image<float>& fixed, const Image<float>& moving, const SynOptions& o, const Image<float>* mask) {
  for (const auto* im : {&fixed, &moving}) {
    const auto& d = im->geometry().dims;
    VX_CHECK(d[3] == 1 && d[0] >= 4 && d[1] >= 4 && d[2] >= 4, InvalidArgument,
             "syn: 3D images of at least 4 voxels per axis expected (the ", im == &fixed ? "fixed" : "moving",
             " image is ", d[0], "x", d[1], "x", d[2], "x", d[3], ")");
  }
  VX_CHECK(o.metric == Metric::SSD || o.metric == Metric::LNCC || o.metric == Metric::MI, InvalidArgument,
           "syn metric: ssd, lncc or mi (got ", metric_names().name(o.metric), ")");
  VX_CHECK(o.bins >= 8 && o.bins <= 256, InvalidArgument, "syn bins: 8..256 (got ", o.bins, ")");
  const std::vector<int> levels = syn_levels(o, fixed.geometry());
  for (int s : levels) VX_CHECK(s >= 1 && s <= 64, InvalidArgument, "syn levels: shrink factors are 1..64 (got ", s, ")");
  VX_CHECK(o.smoothing.empty() || o.smoothing.size() == levels.size(), InvalidArgument, "syn smoothing: ",
           levels.size(), " values expected (one per level), got ", o.smoothing.size());
  for (double s : o.smoothing) VX_CHECK(s >= 0 && std::isfinite(s), InvalidArgument, "syn smoothing: sigmas must be >= 0");
  VX_CHECK(o.iterations.size() == 1 || o.iterations.size() == levels.size(), InvalidArgument,
           "syn iterations: one value or one per level (", levels.size(), ")");
  for (int it : o.iterations) VX_CHECK(it >= 0, InvalidArgument, "syn iterations must be >= 0");
  VX_CHECK(o.step > 0 && o.step <= 10, InvalidArgument, "syn step: 0 < step <= 10 voxels (got ", o.step, ")");
  VX_CHECK(o.update_sigma >= 0 && o.update_sigma <= 50 && o.total_sigma >= 0 && o.total_sigma <= 50, InvalidArgument,
           "syn update / total sigma: 0..50 voxels");
  VX_CHECK(o.degree >= 1 && o.degree <= 5, InvalidArgument, "syn degree: 1..5 (got ", o.degree, ")");
  VX_CHECK(o.radius >= 1 && o.radius <= 32, InvalidArgument, "syn radius: 1..32 (got ", o.radius, ")");
  VX_CHECK(o.convergence >= 0 && std::isfinite(o.convergence), InvalidArgument, "syn convergence must be >= 0");
  if (mask) {
    VX_CHECK(mask->geometry().same_grid(fixed.geometry()), InvalidArgument, "syn: the fixed mask is not on the fixed image's grid");
    VX_CHECK(std::any_of(mask->data(), mask->data() + mask->size(), [](float v) { return v != 0.0f; }), InvalidArgument,
             "syn: the fixed mask is empty (no non-zero voxel)");
  }
}

std::pair<float, float> value_range(const Image<float>& im) {
  const auto [lo, hi] = std::minmax_element(im.data(), im.data() + im.size());
  return {*lo, *hi};
}

void check_overlap(const Image<float>& fixed, const Image<float>& moving, const Mat4& affine) {
  VX_CHECK(affine.allFinite() && std::abs(affine.topLeftCorner<3, 3>().determinant()) > 1e-12, InvalidArgument,
           "syn: the affine transform is not an invertible map");
  const Geometry &fg = fixed.geometry(), &mg = moving.geometry();
  const Mat4 M = mg.affine.inverse() * affine * fg.affine;
  const int64_t step = std::max<int64_t>(1, std::max({fg.dims[0], fg.dims[1], fg.dims[2]}) / 16);
  const auto [inside, total] = reg::voxels_inside(fg, mg, M, step);
  VX_CHECK(inside * 20 >= total, InvalidArgument, "the images do not overlap at the affine transform (", inside, " of ",
           total, " fixed voxels checked map inside the moving image)");
}

LevelImages make_level(const Image<float>& fixed, const Image<float>& moving, int shrink, double sigma_mm, int degree,
                       const Image<float>* mask) {
  auto level = [&](const Image<float>& im, int s) {
    const Vec3 sp = im.geometry().spacing();
    const double sig[3] = {sigma_mm / sp[0], sigma_mm / sp[1], sigma_mm / sp[2]};
    return reg::smooth_shrink(im, sig, s);
  };
  const Image<float> F = level(fixed, shrink);
  const Image<float> M = level(moving, reg::moving_shrink(fixed.geometry(), moving.geometry(), shrink));
  LevelImages L;
  L.grid = F.geometry();
  L.cf = spline_coefficients<float>(F.view(), 3, degree, Mode::Nearest);
  L.cm = spline_coefficients<float>(M.view(), 3, degree, Mode::Nearest);
  L.fixed_world_to_voxel = F.geometry().affine.inverse();
  L.moving_world_to_voxel = M.geometry().affine.inverse();
  L.varf = variance(F), L.varm = variance(M);
  std::tie(L.fmin, L.fmax) = value_range(F);
  std::tie(L.mmin, L.mmax) = value_range(M);
  if (mask) { // a level voxel is in where the mask, shrunk as the images are, is >= 0.5
    const double none[3] = {0, 0, 0};
    const Image<float> m = reg::smooth_shrink(*mask, none, shrink);
    L.mask.resize(size_t(m.size()));
    bool any = false;
    for (int64_t q = 0; q < m.size(); ++q) any |= (L.mask[size_t(q)] = m.data()[q] >= 0.5f) != 0;
    if (!any) // a small mask on a coarse level: its best-covered voxels
      for (int64_t q = 0; q < m.size(); ++q) L.mask[size_t(q)] = m.data()[q] > 0.0f;
  }
  return L;
}

Image<float> zero_field(const Geometry& grid) {
  Geometry g = grid;
  g.dims[3] = 3, g.ndim = 4;
  return Image<float>(g, 0.0f);
}

/// One greedy step on field u from its metric gradient g: d = -G(g) scaled to `step` voxels, composed.
void step_field(Image<float>& u, Image<float>& g, const SynOptions& o) {
  smooth_field(g, o.update_sigma);
  const double m = max_voxel_norm(g);
  if (!(m > 0) || !std::isfinite(m)) return;
  const float s = float(-o.step / m);
  for (int64_t q = 0; q < g.size(); ++q) g.data()[q] *= s;
  compose_update(u, g);
  smooth_field(u, o.total_sigma);
}

/// Inverse of a field (mm) on its grid by fixed-point iteration (voxel units inside).
Image<float> invert(const Image<float>& u) {
  const int64_t N = u.geometry().frame_size();
  const Eigen::Matrix3d L = u.geometry().affine.topLeftCorner<3, 3>(), Linv = L.inverse();
  auto convert = [N](Image<float>& f, const Eigen::Matrix3d& M) {
    float* d = f.data();
    parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
      for (int64_t q = a; q < b; ++q) {
        const Eigen::Vector3d v = M * Eigen::Vector3d(d[q], d[q + N], d[q + 2 * N]);
        for (int c = 0; c < 3; ++c) d[q + c * N] = float(v[c]);
      }
    });
  };
  Image<float> uv = u;
  convert(uv, Linv);
  Image<float> inv(u.geometry(), no_init);
  invert_displacement<float>(uv.view(), 3, 1, 50, 1e-4, inv.view());
  convert(inv, L);
  return inv;
}

/// The map y -> y + a(y) followed by z -> z + b(z), as one field on their (common) grid.
Image<float> compose(const Image<float>& a, const Image<float>& b) {
  const Geometry& g = a.geometry();
  const int64_t* n = g.dims.data();
  const int64_t N = g.frame_size();
  const Eigen::Matrix3d Linv = g.affine.topLeftCorner<3, 3>().inverse();
  Image<float> out(g, no_init);
  parallel_for(N, kVoxGrain, [&](int64_t lo, int64_t hi) {
    VoxelIndex v(lo, n);
    for (int64_t q = lo; q < hi; ++q, v.next()) {
      const Eigen::Vector3d x = v.point();
      const Eigen::Vector3d av{a.data()[q], a.data()[q + N], a.data()[q + 2 * N]};
      const Eigen::Vector3d r = av + sample_field(b.data(), n, x + Linv * av);
      for (int d = 0; d < 3; ++d) out.data()[q + d * N] = float(r[d]);
    }
  });
  return out;
}

/// A float field as a DisplacementField (double storage of the float values: the field written to a
/// float32 file is the one the moved image was made with).
DisplacementField as_field(const Image<float>& u) {
  DisplacementField f;
  f.u = Image<double>(u.geometry(), no_init);
  std::copy(u.data(), u.data() + u.size(), f.u.data());
  return f;
}

} // namespace

std::vector<int> syn_levels(const SynOptions& o, const Geometry& fixed) {
  if (!o.levels.empty()) return o.levels;
  const Vec3 sp = fixed.spacing();
  const int64_t shortest = std::min({fixed.dims[0], fixed.dims[1], fixed.dims[2]});
  const int finest = std::max(1, int(std::lround(2.0 / sp.minCoeff())));
  std::vector<int> out;
  for (int f : {4 * finest, 2 * finest, finest}) {
    while (f > 1 && shortest / f < 8) --f; // a level keeps >= 8 voxels along the shortest axis
    out.push_back(f);
  }
  return out;
}

double syn::metric_and_gradient(const Image<float>& F, const Image<float>& M, const Mat4& affine, const Image<float>& u1,
                                const Image<float>& u2, const SynOptions& o, Image<float>* g1, Image<float>* g2,
                                const Image<float>* mask) {
  check_options(F, M, o, mask);
  const LevelImages L = make_level(F, M, 1, 0.0, o.degree, mask);
  for (const auto* u : {&u1, &u2}) {
    const auto& d = u->geometry().dims;
    VX_CHECK(d[0] == L.grid.dims[0] && d[1] == L.grid.dims[1] && d[2] == L.grid.dims[2] && d[3] == 3, InvalidArgument,
             "syn metric: fields must have 3 components on the fixed grid");
  }
  return level_metric(L, affine, u1, u2, o, g1, g2);
}

SynResult register_syn(const Image<float>& fixed, const Image<float>& moving, const Mat4& affine, const SynOptions& o,
                       const RegisterProgress& progress, const Image<float>* fixed_mask) {
  check_options(fixed, moving, o, fixed_mask);
  check_overlap(fixed, moving, affine);
  const Vec3 fsp = fixed.geometry().spacing();
  const std::vector<int> levels = syn_levels(o, fixed.geometry());
  const int nlev = int(levels.size());
  SynResult res;
  Image<float> u1, u2;
  for (int li = 0; li < nlev; ++li) {
    const int shrink = levels[size_t(li)];
    const double sigma = o.smoothing.empty() ? (shrink > 1 ? 0.5 * shrink * fsp.mean() : 0.0) : o.smoothing[size_t(li)];
    const int iters = o.iterations.size() == 1 ? o.iterations[0] : o.iterations[size_t(li)];
    const LevelImages L = make_level(fixed, moving, shrink, sigma, o.degree, fixed_mask);
    if (li == 0) {
      u1 = zero_field(L.grid), u2 = zero_field(L.grid);
    } else {
      u1 = resample_field(u1, L.grid), u2 = resample_field(u2, L.grid);
    }
    std::vector<double> history;
    RegisterLevel rl;
    rl.shrink = shrink, rl.sigma_mm = sigma, rl.samples = L.grid.frame_size();
    double E = 0;
    for (int it = 0; it <= iters; ++it) {
      Image<float> g1, g2;
      // The last pass only measures the metric at the level's final fields.
      E = level_metric(L, affine, u1, u2, o, it < iters ? &g1 : nullptr, it < iters ? &g2 : nullptr);
      history.push_back(E);
      if (progress) {
        RegisterStep s;
        s.level = li, s.levels = nlev, s.evaluation = it, s.max_iterations = iters, s.metric = E;
        progress(s);
      }
      if (it == iters) break;
      const size_t h = history.size();
      if (h > 10 && history[h - 11] - E <= o.convergence * std::abs(history[h - 11])) break;
      step_field(u1, g1, o);
      step_field(u2, g2, o);
      rl.iterations = it + 1;
    }
    rl.metric = E;
    res.levels.push_back(rl);
    res.metric = E;
  }
  // Forward D = phi2 o phi1^-1: y -> y + w(y), then z -> z + u2(z). Inverse phi1 o phi2^-1. Both on
  // the finest level's grid, where the fields were estimated (smooth at its scale), then brought to
  // the fixed grid: inverting on the full grid would cost shrink^3 as much for the same map.
  const Geometry& fg = fixed.geometry();
  Image<float> fwd = compose(invert(u1), u2), inv = compose(invert(u2), u1);
  if (!fwd.geometry().same_grid(fg)) fwd = resample_field(fwd, fg), inv = resample_field(inv, fg);
  res.forward = as_field(fwd);
  res.inverse = as_field(inv);
  return res;
}

DeformableResult register_deformable(const Image<float>& fixed, const Image<float>& moving,
                                     const RegisterOptions& affine_opts, const SynOptions& opts,
                                     const Image<float>* fixed_mask, const Image<float>* moving_mask,
                                     const RegisterProgress& progress) {
  check_options(fixed, moving, opts, fixed_mask); // before the affine stages spend their time
  const int na = int(affine_opts.levels.size()), total = 2 * na + int(syn_levels(opts, fixed.geometry()).size());
  auto shifted = [&](int offset) -> RegisterProgress {
    if (!progress) return {};
    return [&progress, offset, total](const RegisterStep& s) {
      RegisterStep t = s;
      t.level += offset, t.levels = total;
      progress(t);
    };
  };
  RegisterOptions o = affine_opts;
  o.transform = TransformType::Rigid;
  const RegisterResult rigid = register_images(fixed, moving, o, fixed_mask, moving_mask, shifted(0));
  o.transform = TransformType::Affine;
  o.has_init_matrix = true, o.init_matrix = rigid.matrix;
  DeformableResult r;
  r.affine = register_images(fixed, moving, o, fixed_mask, moving_mask, shifted(na));
  r.syn = register_syn(fixed, moving, r.affine.matrix, opts, shifted(2 * na), fixed_mask);
  return r;
}

Image<float> jacobian_determinant(const DisplacementField& f) {
  const Geometry& g = f.u.geometry();
  Geometry g1 = g;
  g1.dims[3] = 1, g1.ndim = 3;
  Image<float> out(g1, no_init);
  const int64_t* n = g.dims.data();
  const int64_t N = g.frame_size();
  const Eigen::Matrix3d Linv = g.affine.topLeftCorner<3, 3>().inverse();
  const double* u = f.u.data();
  parallel_for(N, kVoxGrain, [&](int64_t a, int64_t b) {
    for (int64_t q = a; q < b; ++q) {
      const int64_t idx[3] = {q % n[0], (q / n[0]) % n[1], q / (n[0] * n[1])};
      const int64_t st[3] = {1, n[0], n[0] * n[1]};
      Eigen::Matrix3d D; // D(c, a) = d u_c / d voxel_a
      for (int ax = 0; ax < 3; ++ax) {
        const int64_t lo = std::max<int64_t>(idx[ax] - 1, 0), hi = std::min<int64_t>(idx[ax] + 1, n[ax] - 1);
        for (int c = 0; c < 3; ++c)
          D(c, ax) = hi == lo ? 0.0
                              : (u[q + (hi - idx[ax]) * st[ax] + c * N] - u[q + (lo - idx[ax]) * st[ax] + c * N]) /
                                    double(hi - lo);
      }
      out.data()[q] = float((Eigen::Matrix3d::Identity() + D * Linv).determinant());
    }
  });
  return out;
}

} // namespace voxalign
