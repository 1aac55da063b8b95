// voxalign::sdc: the multi-resolution Gauss-Newton estimate of the field from a blip-up/blip-down
// pair (docs/sdc.md). Internally the phase-encoding axis is made axis 0 (contiguous lines).
#include "voxalign/sdc/sdc.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "internal.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/realign/realign.hpp"
#include "voxalign/register/register.hpp"
#include "voxalign/solve/solvers.hpp"
#include "voxalign/spline/prefilter.hpp"

namespace voxalign {
namespace {

using namespace sdc_detail;

/// Axes in internal order: the phase-encoding axis first, then the other two in order.
std::array<int, 3> axis_order(int pe) {
  std::array<int, 3> p{pe, 0, 0};
  int j = 1;
  for (int a = 0; a < 3; ++a)
    if (a != pe) p[size_t(j++)] = a;
  return p;
}

/// The mean of a 3D/4D view's frames, with axes permuted (out axis d = in axis perm[d]).
std::vector<float> mean_permuted(ImageView<const float> in, const std::array<int, 3>& perm) {
  const int64_t d0 = in.dims[perm[0]], d1 = in.dims[perm[1]], d2 = in.dims[perm[2]], T = in.dims[3];
  std::vector<float> out(static_cast<size_t>(d0 * d1 * d2));
  parallel_for(d2, 1, [&](int64_t b, int64_t e) {
    int64_t idx[3];
    for (int64_t k = b; k < e; ++k)
      for (int64_t j = 0; j < d1; ++j)
        for (int64_t i = 0; i < d0; ++i) {
          idx[perm[0]] = i, idx[perm[1]] = j, idx[perm[2]] = k;
          double s = 0;
          for (int64_t t = 0; t < T; ++t) s += in(idx[0], idx[1], idx[2], t);
          out[size_t(i + d0 * (j + d1 * k))] = float(s / double(T));
        }
  });
  return out;
}

/// Check that every value is finite (one line naming the image).
void check_finite(ImageView<const float> v, const char* what) {
  for (int64_t t = 0; t < v.dims[3]; ++t)
    for (int64_t k = 0; k < v.dims[2]; ++k)
      for (int64_t j = 0; j < v.dims[1]; ++j)
        for (int64_t i = 0; i < v.dims[0]; ++i)
          VX_CHECK(std::isfinite(v(i, j, k, t)), InvalidArgument, what, " has a non-finite value at voxel (", i, ", ", j,
                   ", ", k, ")");
}

Image<float> as_image(std::vector<float>&& v, const int64_t* dims, const double* spacing) {
  Geometry g;
  for (int d = 0; d < 3; ++d) g.dims[size_t(d)] = dims[d], g.affine(d, d) = spacing[d];
  Image<float> im(g, no_init);
  std::copy(v.begin(), v.end(), im.data());
  v = {};
  return im;
}

/// Coefficients on `next` that interpolate the field of (prev, c) at next's control points.
std::vector<double> refit(const std::array<ControlLayout, 3>& prev, const std::vector<double>& c,
                          const std::array<ControlLayout, 3>& next) {
  FieldBasis at;
  for (int a = 0; a < 3; ++a) {
    // Control k of `next` at full coordinate origin + (k - 1) s: an axis whose "voxels" are those points.
    ControlLayout shifted = prev[size_t(a)];
    const ControlLayout& nx = next[size_t(a)];
    // make_axis puts voxel i at factor i + (factor - 1) / 2 (factor 1: i); express the points in a
    // layout shifted and scaled so that voxel i lands on next's control i.
    shifted.origin = (prev[size_t(a)].origin - (nx.origin - nx.spacing)) / nx.spacing;
    shifted.spacing = prev[size_t(a)].spacing / nx.spacing;
    at.ax[a] = make_axis(shifted, nx.nc, 1);
  }
  std::vector<double> v(static_cast<size_t>(at.voxels()));
  at.forward(c.data(), v.data(), nullptr);
  const int64_t dims[4] = {next[0].nc, next[1].nc, next[2].nc, 1};
  prefilter_in_place<double>(v.data(), dims, 3, 3, Mode::Mirror);
  return v;
}

/// The mean of a 4D image's volumes after aligning them rigidly (realign to their mean, cubic
/// reslicing), on `grid`.
Image<float> aligned_mean(ImageView<const float> v, const Geometry& grid) {
  Geometry g = grid;
  g.ndim = 4;
  for (int d = 0; d < 4; ++d) g.dims[size_t(d)] = v.dims[d];
  Image<float> series(g, no_init);
  for (int64_t t = 0, p = 0; t < v.dims[3]; ++t)
    for (int64_t k = 0; k < v.dims[2]; ++k)
      for (int64_t j = 0; j < v.dims[1]; ++j)
        for (int64_t i = 0; i < v.dims[0]; ++i, ++p) series.data()[p] = v(i, j, k, t);
  const RealignOptions ro;
  const RealignResult r = realign(series, ro);
  Image<float> mean;
  reslice_series(series, r.matrices, ro.write_degree, nullptr, &mean);
  return mean;
}

} // namespace

void check_sdc_options(const SdcOptions& o) {
  const size_t L = o.warp_res.size();
  VX_CHECK(L >= 1, InvalidArgument, "--warpres: at least one level");
  VX_CHECK(o.subsample.size() == L && o.fwhm.size() == L && o.iterations.size() == L && o.lambda.size() == L,
           InvalidArgument, "--warpres, --subsamp, --fwhm, --miter and --lambda need one value per level each (",
           L, " levels from --warpres; got ", o.subsample.size(), ", ", o.fwhm.size(), ", ", o.iterations.size(), ", ",
           o.lambda.size(), ")");
  for (size_t l = 0; l < L; ++l) {
    VX_CHECK(std::isfinite(o.warp_res[l]) && o.warp_res[l] > 0, InvalidArgument, "--warpres: values must be > 0 mm");
    VX_CHECK(o.subsample[l] >= 1 && o.subsample[l] <= 16, InvalidArgument, "--subsamp: values must be 1..16");
    VX_CHECK(std::isfinite(o.fwhm[l]) && o.fwhm[l] >= 0, InvalidArgument, "--fwhm: values must be >= 0 mm");
    VX_CHECK(o.iterations[l] >= 0, InvalidArgument, "--miter: values must be >= 0");
    VX_CHECK(std::isfinite(o.lambda[l]) && o.lambda[l] >= 0, InvalidArgument, "--lambda: values must be >= 0");
  }
  VX_CHECK(o.cg_iterations >= 1, InvalidArgument, "cg_iterations must be >= 1");
  VX_CHECK(std::isfinite(o.tolerance) && o.tolerance >= 0, InvalidArgument, "--tolerance must be >= 0");
}

SdcResult sdc(ImageView<const float> up, ImageView<const float> down, const Geometry& grid, PhaseEncoding pe_up,
              double readout_up, PhaseEncoding pe_down, double readout_down, const ImageView<const uint8_t>* mask,
              const SdcOptions& o) {
  check_sdc_options(o);
  for (int d = 0; d < 3; ++d)
    VX_CHECK(up.dims[d] == down.dims[d] && up.dims[d] == grid.dims[size_t(d)], InvalidArgument,
             "the two images are not on one grid (", up.dims[0], "x", up.dims[1], "x", up.dims[2], " vs ", down.dims[0],
             "x", down.dims[1], "x", down.dims[2], ")");
  VX_CHECK(pe_up.axis >= 0 && pe_up.axis < 3 && pe_up.axis == pe_down.axis, InvalidArgument,
           "the two images must be phase-encoded along one axis (got ", phase_encoding_name(pe_up), " and ",
           phase_encoding_name(pe_down), ")");
  VX_CHECK(pe_up.sign != pe_down.sign, InvalidArgument, "both images have phase-encoding direction ",
           phase_encoding_name(pe_up), "; the pair needs opposite directions (e.g. j and j-)");
  VX_CHECK(std::isfinite(readout_up) && readout_up > 0 && std::isfinite(readout_down) && readout_down > 0,
           InvalidArgument, "the total readout time must be > 0 s (got ", readout_up, " and ", readout_down, ")");
  VX_CHECK(grid.dims[size_t(pe_up.axis)] >= 4, InvalidArgument, "the phase-encoding axis has ",
           grid.dims[size_t(pe_up.axis)], " voxels; at least 4 are needed");
  if (mask) {
    for (int d = 0; d < 3; ++d)
      VX_CHECK(mask->dims[d] == grid.dims[size_t(d)] && mask->dims[3] == 1, InvalidArgument,
               "the mask is not on the images' grid");
    bool any = false;
    for (int64_t k = 0; k < mask->dims[2] && !any; ++k)
      for (int64_t j = 0; j < mask->dims[1] && !any; ++j)
        for (int64_t i = 0; i < mask->dims[0] && !any; ++i) any = (*mask)(i, j, k) != 0;
    VX_CHECK(any, InvalidArgument, "the mask is empty: no voxel to fit the field to");
  }
  check_finite(up, "the blip-up image");
  check_finite(down, "the blip-down image");
  // Several volumes per direction: aligned and averaged first; the rest sees one volume each.
  Image<float> up_mean, down_mean;
  if (o.align_volumes && up.dims[3] > 1) up_mean = aligned_mean(up, grid), up = up_mean.view();
  if (o.align_volumes && down.dims[3] > 1) down_mean = aligned_mean(down, grid), down = down_mean.view();

  const std::array<int, 3> perm = axis_order(pe_up.axis);
  const Vec3 sp3 = grid.spacing();
  const int64_t N[3] = {grid.dims[size_t(perm[0])], grid.dims[size_t(perm[1])], grid.dims[size_t(perm[2])]};
  const double sp[3] = {sp3[perm[0]], sp3[perm[1]], sp3[perm[2]]};
  std::vector<float> u = mean_permuted(up, perm), d = mean_permuted(down, perm);
  // Intensities normalised by the mean of the mean image's voxels above its overall mean (the head,
  // roughly), so that lambda does not depend on the scanner's scale.
  {
    double mean = 0;
    for (size_t i = 0; i < u.size(); ++i) mean += 0.5 * (double(u[i]) + double(d[i]));
    mean /= double(u.size());
    double s = 0;
    int64_t n = 0;
    for (size_t i = 0; i < u.size(); ++i) {
      const double m = 0.5 * (double(u[i]) + double(d[i]));
      if (m > mean) s += m, ++n;
    }
    const double scale = n > 0 && s > 0 ? double(n) / s : 1.0;
    for (size_t i = 0; i < u.size(); ++i) u[i] = float(u[i] * scale), d[i] = float(d[i] * scale);
  }
  const Image<float> U = as_image(std::move(u), N, sp), D = as_image(std::move(d), N, sp);
  Image<float> M;
  if (mask) {
    std::vector<float> mv(static_cast<size_t>(N[0] * N[1] * N[2]));
    int64_t idx[3];
    for (int64_t k = 0; k < N[2]; ++k)
      for (int64_t j = 0; j < N[1]; ++j)
        for (int64_t i = 0; i < N[0]; ++i) {
          idx[perm[0]] = i, idx[perm[1]] = j, idx[perm[2]] = k;
          mv[size_t(i + N[0] * (j + N[1] * k))] = (*mask)(idx[0], idx[1], idx[2]) != 0 ? 1.0f : 0.0f;
        }
    M = as_image(std::move(mv), N, sp);
  }
  const double a_up = pe_up.sign * readout_up, a_down = pe_down.sign * readout_down;

  SdcResult res;
  std::array<double, 6> theta{}; // DOWN's rigid motion (internal mm frame), carried across levels
  std::array<ControlLayout, 3> layout{};
  std::vector<double> c;
  for (size_t l = 0; l < o.warp_res.size(); ++l) {
    LevelProblem P;
    const int f = o.subsample[l];
    double sig[3];
    for (int a = 0; a < 3; ++a) sig[a] = o.fwhm[l] / (2.0 * std::sqrt(2.0 * std::log(2.0))) / sp[a];
    const Image<float> Lu = reg::smooth_shrink(U, sig, f), Ld = reg::smooth_shrink(D, sig, f);
    std::array<ControlLayout, 3> next;
    int fa[3];
    for (int a = 0; a < 3; ++a) {
      P.dims[a] = Lu.geometry().dims[size_t(a)];
      fa[a] = P.dims[a] == N[a] ? 1 : f;
      next[size_t(a)] = control_layout(N[a], o.warp_res[l] / sp[a]);
      P.basis.ax[a] = make_axis(next[size_t(a)], P.dims[a], fa[a]);
      P.bending.nc[a] = next[size_t(a)].nc;
      P.bending.h[a] = next[size_t(a)].spacing * sp[a];
    }
    P.bending.lambda = o.lambda[l];
    P.voxel_volume = sp[0] * fa[0] * sp[1] * fa[1] * sp[2] * fa[2];
    P.shift_up = a_up / fa[0], P.shift_down = a_down / fa[0];
    P.jac_up = a_up, P.jac_down = a_down;
    P.coef_up.assign(Lu.data(), Lu.data() + Lu.size());
    P.coef_down.assign(Ld.data(), Ld.data() + Ld.size());
    const int64_t dims4[4] = {P.dims[0], P.dims[1], P.dims[2], 1};
    prefilter_in_place<double>(P.coef_up.data(), dims4, 1, 3, Mode::Mirror);
    prefilter_in_place<double>(P.coef_down.data(), dims4, 1, 3, Mode::Mirror);
    if (mask) {
      const double none[3] = {0, 0, 0};
      const Image<float> Lm = reg::smooth_shrink(M, none, f);
      P.weight.assign(Lm.data(), Lm.data() + Lm.size());
    }
    c = l == 0 ? std::vector<double>(size_t(P.basis.controls()), 0.0) : refit(layout, c, next);
    layout = next;
    MotionProblem Q;
    if (o.motion) {
      Q = make_motion_problem(Ld, fa, sp, N, a_down * sp[0]);
      P.coef_down = moved_down(P, Q, rigid_matrix(theta, Q.centre));
    }

    SdcLevelReport rep;
    for (int a = 0; a < 3; ++a) rep.control_points[size_t(perm[a])] = next[size_t(a)].nc;
    Evaluation E = evaluate(P, c, true, o.approximate);
    rep.initial_cost = E.cost();
    // Gauss-Newton on the field's coefficients and, with motion, DOWN's five free rigid parameters
    // together (their columns appended to the field's): the motion's PE component and a linear field
    // trade off, so fitting them in turn would crawl.
    const size_t nc = c.size(), nj = o.motion ? nc + kMotionFree : nc;
    std::vector<double> s1, s2, dx, diag(nj), q0(static_cast<size_t>(P.basis.voxels())), q1(q0.size()), q2(q0.size()),
        rhs(nj), trial(nc), Jm, kept;
    for (int it = 1; it <= o.iterations[l]; ++it) {
      for (size_t i = 0; i < q0.size(); ++i)
        q0[i] = E.g1[i] * E.g1[i], q1[i] = 2 * E.g1[i] * E.g2[i], q2[i] = E.g2[i] * E.g2[i];
      P.basis.adjoint_squared(q0.data(), q1.data(), q2.data(), diag.data());
      P.bending.diag_add(diag.data());
      for (size_t i = 0; i < nc; ++i) rhs[i] = -E.grad[i];
      if (o.motion) {
        Jm = motion_jacobian(P, Q, c, theta);
        motion_rows_adjoint(Jm, E.residual.data(), rhs.data() + nc);
        for (size_t p = 0; p < size_t(kMotionFree); ++p) {
          rhs[nc + p] = -rhs[nc + p];
          double d = 0;
          for (size_t v = p; v < Jm.size(); v += kMotionFree) d += Jm[v] * Jm[v];
          diag[nc + p] = d;
        }
      }
      double dmax = 0;
      for (double v : diag) dmax = std::max(dmax, v);
      for (double& v : diag) v = std::max(v, 1e-12 * dmax + 1e-300);
      rep.cg_iterations += conjugate_gradient(
          [&](const double* v, double* out) { gauss_newton_apply(P, E, v, out, s1, s2, o.motion ? &Jm : nullptr); },
          rhs, diag, dx, o.cg_iterations, o.cg_tolerance);
      bool accepted = false;
      Evaluation En;
      std::array<double, 6> theta_trial = theta;
      if (o.motion) kept = P.coef_down;
      for (double step = 1.0; step > 1.0 / 64; step *= 0.5) {
        for (size_t i = 0; i < nc; ++i) trial[i] = c[i] + step * dx[i];
        if (o.motion) {
          for (size_t p = 0; p < size_t(kMotionFree); ++p) theta_trial[p + 1] = theta[p + 1] + step * dx[nc + p];
          P.coef_down = moved_down(P, Q, rigid_matrix(theta_trial, Q.centre));
        }
        En = evaluate(P, trial, true, o.approximate);
        if (En.cost() < E.cost()) {
          accepted = true;
          break;
        }
      }
      if (!accepted) {
        if (o.motion) P.coef_down.swap(kept);
        break;
      }
      const double drop = (E.cost() - En.cost()) / std::max(E.cost(), 1e-300);
      c.swap(trial);
      theta = theta_trial;
      E = std::move(En);
      rep.iterations = it;
      if (o.progress) o.progress({int(l), it, E.cost()});
      if (drop < o.tolerance) break;
    }
    rep.final_cost = E.cost();
    res.report.levels.push_back(rep);
  }

  // The field on the input grid, from the last level's lattice.
  FieldBasis full;
  for (int a = 0; a < 3; ++a) full.ax[a] = make_axis(layout[size_t(a)], N[a], 1);
  std::vector<double> Fv(static_cast<size_t>(full.voxels())), Fp(Fv.size());
  full.forward(c.data(), Fv.data(), Fp.data());
  double deficit = 0;
  for (double v : Fp) deficit = std::max({deficit, -(1 + a_up * v), -(1 + a_down * v)});
  res.report.max_abs_jacobian_deficit = deficit;
  Geometry g3 = grid;
  g3.dims[3] = 1;
  g3.ndim = std::min(g3.ndim, 3);
  res.field = Image<float>(g3, no_init);
  int64_t idx[3];
  for (int64_t k = 0; k < N[2]; ++k)
    for (int64_t j = 0; j < N[1]; ++j)
      for (int64_t i = 0; i < N[0]; ++i) {
        idx[perm[0]] = i, idx[perm[1]] = j, idx[perm[2]] = k;
        res.field.data()[idx[0] + grid.dims[0] * (idx[1] + grid.dims[1] * idx[2])] =
            float(Fv[size_t(i + N[0] * (j + N[1] * k))]);
      }
  // The corrected images from the field as written (what --apply gives for the same image); DOWN
  // under motion through the one-shot resampler, onto UP's frame.
  const Image<float> cu = sdc_apply(up, res.field.view(), pe_up, readout_up);
  Image<float> cd;
  if (o.motion) {
    res.report.motion_parameters = theta;
    // internal mm z = S P v (v original voxel, P the permutation) -> RAS through the grid's matrix
    Mat4 SP = Mat4::Zero();
    SP(3, 3) = 1;
    for (int a = 0; a < 3; ++a) SP(a, perm[a]) = sp[a];
    const Mat4 vox = SP.inverse() * rigid_matrix(theta, motion_centre(N, sp)) * SP;
    res.motion = grid.affine * vox * grid.affine.inverse();
    cd = sdc_apply_with_motion(down, res.field.view(), g3, pe_down, readout_down,
                               std::vector<Mat4>(size_t(down.dims[3]), res.motion));
  } else {
    cd = sdc_apply(down, res.field.view(), pe_down, readout_down);
  }
  auto mean_of = [&](const Image<float>& s) {
    Image<float> m(g3, 0.0f);
    const int64_t T = s.geometry().dims[3], n = g3.frame_size();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t v = 0; v < n; ++v) m.data()[v] += s.data()[v + n * t] / float(T);
    return m;
  };
  res.corrected_up = mean_of(cu);
  res.corrected_down = mean_of(cd);
  res.corrected = Image<float>(g3, no_init);
  for (int64_t v = 0; v < g3.frame_size(); ++v)
    res.corrected.data()[v] = 0.5f * (res.corrected_up.data()[v] + res.corrected_down.data()[v]);
  return res;
}

} // namespace voxalign
