// 4D realignment on the registration engine (docs/realign.md).
#include "voxalign/realign/realign.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <mutex>
#include <sstream>

#include "../register/engine.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/resample/resample.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/transform/affine_io.hpp"
#include "voxalign/warp/affine_params.hpp"

namespace voxalign {
namespace {

constexpr double kFwhmToSigma = 0.42466090014400953; // 1 / (2 sqrt(2 ln 2))
constexpr int64_t kChunk = 8;                          // frames per warm-start chain

Image<float> frame_of(const Image<float>& series, int64_t t) {
  Geometry g = series.geometry();
  g.dims[3] = 1;
  g.ndim = 3;
  Image<float> f(g, no_init);
  const int64_t n = g.frame_size();
  std::copy(series.data() + t * n, series.data() + (t + 1) * n, f.data());
  return f;
}

Image<float> smooth(const Image<float>& img, double fwhm) {
  if (!(fwhm > 0)) return img;
  const Vec3 sp = img.geometry().spacing();
  double s[3];
  for (int d = 0; d < 3; ++d) s[d] = fwhm * kFwhmToSigma / sp[d];
  return reg::gaussian_smooth(img, s);
}

/// Reference samples on SPM's grid (every sep mm, voxel positions 0, s, 2s, ... with s = sep /
/// voxel size, at least 1), values of the smoothed reference by cubic B-spline interpolation, the
/// samples inside `weight`, then the subset with the largest gradient energy that holds `quality`
/// of its total (SPM drops the samples that inform the fit least).
reg::Level reference_level(const Image<float>& ref, const Image<float>* weight, const RealignOptions& o) {
  reg::Level L;
  const Geometry& g = ref.geometry();
  L.ndim = g.dims[2] == 1 ? 2 : 3;
  L.fixed_affine = g.affine;
  L.moving_affine = g.affine;
  const Vec3 sp = g.spacing();
  double step[3], lo[3], hi[3];
  for (int d = 0; d < 3; ++d) {
    step[d] = std::max(1.0, o.sep / sp[d]);
    // Samples within two smoothing sigmas of the field of view's edge are left out: there the
    // smoothed reference and the smoothed frame see different tissue beyond the edge (the frame's
    // field of view moved with the head), which biases the fit (0.07 mm -> 0.008 mm on the test).
    const double m = o.fwhm > 0 ? std::ceil(2.0 * o.fwhm * kFwhmToSigma / sp[d]) : 0.0;
    const bool room = double(g.dims[d]) > 4.0 * m + 1.0;
    lo[d] = room ? m : 0.0;
    hi[d] = double(g.dims[d] - 1) - (room ? m : 0.0);
  }
  std::vector<double> pts;
  for (double z = lo[2]; z <= hi[2] + 1e-9; z += step[2])
    for (double y = lo[1]; y <= hi[1] + 1e-9; y += step[1])
      for (double x = lo[0]; x <= hi[0] + 1e-9; x += step[0]) {
        if (weight) {
          const int64_t i = std::llround(x), j = std::llround(y), k = std::llround(z);
          if (weight->data()[i + g.dims[0] * (j + g.dims[1] * k)] == 0.0f) continue;
        }
        pts.insert(pts.end(), {x, y, z});
      }
  int64_t n = int64_t(pts.size() / 3);
  VX_CHECK(n >= 16, InvalidArgument, "the mask leaves ", n, " reference samples (at least 16 are needed)");
  const Coefficients<float> c = spline_coefficients<float>(ref.view(), L.ndim, 3, Mode::Mirror);
  std::vector<double> p2;
  const double* P = pts.data();
  if (L.ndim == 2) { // the interpolator takes ndim coordinates per point
    for (int64_t i = 0; i < n; ++i) p2.insert(p2.end(), {pts[size_t(3 * i)], pts[size_t(3 * i + 1)]});
    P = p2.data();
  }
  std::vector<float> val(static_cast<size_t>(n)), grad(static_cast<size_t>(n * L.ndim));
  interpolate<float>(c, P, n, val.data(), grad.data());
  std::vector<double> energy(static_cast<size_t>(n));
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double e = 0;
    for (int d = 0; d < L.ndim; ++d) {
      const double gd = grad[static_cast<size_t>(i * L.ndim + d)] / sp[d];
      e += gd * gd;
    }
    energy[static_cast<size_t>(i)] = e;
    total += e;
  }
  std::vector<int64_t> keep(static_cast<size_t>(n));
  std::iota(keep.begin(), keep.end(), 0);
  if (o.quality < 1.0 && total > 0) {
    std::vector<int64_t> order = keep;
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return energy[static_cast<size_t>(a)] > energy[static_cast<size_t>(b)]; });
    double acc = 0;
    size_t m = 0;
    while (m < order.size() && acc < o.quality * total) acc += energy[static_cast<size_t>(order[m++])];
    m = std::max<size_t>(m, std::min<size_t>(order.size(), 64));
    keep.assign(order.begin(), order.begin() + static_cast<int64_t>(m));
    std::sort(keep.begin(), keep.end()); // memory order: cache-friendly and deterministic
  }
  for (int64_t i : keep) {
    L.pos.insert(L.pos.end(), {float(pts[size_t(3 * i)]), float(pts[size_t(3 * i + 1)]), float(pts[size_t(3 * i + 2)])});
    L.fval.push_back(val[static_cast<size_t>(i)]);
  }
  L.count = int64_t(L.fval.size());
  return L;
}

void check_series(const Image<float>& s) {
  const Geometry& g = s.geometry();
  VX_CHECK(g.dims[3] >= 2, InvalidArgument, g.dims[3] == 1 ? "the image is 3D (one frame): realign needs a 4D time series"
                                                         : "the time series has no frame");
  const int64_t n = g.frame_size();
  for (int64_t t = 0; t < g.dims[3]; ++t)
    for (int64_t q = 0; q < n; ++q)
      VX_CHECK(std::isfinite(s.data()[t * n + q]), InvalidArgument, "frame ", t, " has a non-finite value (NaN or Inf) at voxel ", q);
}

} // namespace

void reslice_frame(const Image<float>& series, int64_t t, const Mat4& pullback, int degree, ImageView<float> out) {
  const Geometry& g = series.geometry();
  ResampleOptions ro;
  ro.order = degree;
  ro.mode = Mode::GridConstant;
  resample_into<float>(ImageView<const float>(series.view()).frame(t), g.affine, interpolated_axes(g), out, g.affine,
                       pullback, ro);
}

void reslice_series(const Image<float>& series, const std::vector<Mat4>& pullbacks, int degree, Image<float>* out,
                    Image<float>* mean, const ResliceProgress& progress) {
  const Geometry& g = series.geometry();
  const int64_t T = g.dims[3], n = g.frame_size();
  VX_CHECK(int64_t(pullbacks.size()) == T, InvalidArgument, "reslice: ", T, " transforms needed, got ", pullbacks.size());
  Geometry g3 = g;
  g3.dims[3] = 1;
  g3.ndim = 3;
  if (out) *out = Image<float>(g, no_init);
  const int64_t nch = (T + kChunk - 1) / kChunk;
  std::vector<std::vector<double>> part(mean ? static_cast<size_t>(nch) : 0);
  std::mutex mu;
  int done = 0;
  parallel_for(nch, 1, [&](int64_t c0, int64_t c1) {
    Image<float> tmp(g3, no_init);
    for (int64_t ch = c0; ch < c1; ++ch) {
      if (mean) part[static_cast<size_t>(ch)].assign(static_cast<size_t>(n), 0.0);
      for (int64_t t = ch * kChunk; t < std::min(T, (ch + 1) * kChunk); ++t) {
        ImageView<float> dst = out ? out->view().frame(t) : tmp.view();
        reslice_frame(series, t, pullbacks[static_cast<size_t>(t)], degree, dst);
        if (mean) {
          const float* d = out ? out->data() + t * n : tmp.data();
          double* m = part[static_cast<size_t>(ch)].data();
          for (int64_t q = 0; q < n; ++q) m[q] += d[q];
        }
      }
      if (progress) {
        std::lock_guard<std::mutex> lock(mu);
        done += int(std::min(T, (ch + 1) * kChunk) - ch * kChunk);
        progress(done, int(T));
      }
    }
  });
  if (mean) { // chunks combined in order: the same sums for any thread count
    *mean = Image<float>(g3, no_init);
    for (int64_t q = 0; q < n; ++q) {
      double s = 0;
      for (int64_t ch = 0; ch < nch; ++ch) s += part[static_cast<size_t>(ch)][static_cast<size_t>(q)];
      mean->data()[q] = float(s / double(T));
    }
  }
}

RealignResult realign(const Image<float>& series, const RealignOptions& o, const Image<float>* weight,
                      const RealignProgress& progress) {
  check_series(series);
  const Geometry& g = series.geometry();
  const int64_t T = g.dims[3];
  VX_CHECK(o.ref_frame >= 0 && o.ref_frame < T, InvalidArgument, "reference frame ", o.ref_frame, " is not in 0..", T - 1);
  VX_CHECK(o.degree >= 1 && o.degree <= 5, InvalidArgument, "estimation degree must be 1..5, got ", o.degree);
  VX_CHECK(o.sep > 0 && std::isfinite(o.sep), InvalidArgument, "--sep must be a positive number of mm");
  VX_CHECK(o.fwhm >= 0 && std::isfinite(o.fwhm), InvalidArgument, "--fwhm must be >= 0 mm");
  {
    // A smoothing wider than the image means nothing; its kernel (4 sigma a side) would take the
    // memory and the time. Checked before anything is allocated.
    double extent = 0;
    for (int d = 0; d < 3; ++d) extent = std::max(extent, double(g.dims[d]) * g.spacing()[d]);
    VX_CHECK(o.fwhm <= extent, InvalidArgument, "--fwhm ", o.fwhm, " mm is wider than the image (", extent,
             " mm across); give the smoothing in mm, at most the image's size");
  }
  VX_CHECK(o.quality > 0 && o.quality <= 1, InvalidArgument, "quality must be in (0, 1]");
  if (weight) {
    Geometry wg = weight->geometry();
    VX_CHECK(wg.dims[0] == g.dims[0] && wg.dims[1] == g.dims[1] && wg.dims[2] == g.dims[2] && wg.dims[3] == 1,
             InvalidArgument, "the mask must be a 3D image on the series' grid (", g.dims[0], "x", g.dims[1], "x", g.dims[2], ")");
  }
  const int ndim = g.dims[2] == 1 ? 2 : 3;
  reg::Problem P;
  P.model.ndim = ndim;
  P.model.groups = {"translation", "rotation"};
  P.model.centre = g.centre();
  const int np = P.model.size();
  for (int j = 0; j < np; ++j) P.free.push_back(j);
  RegisterOptions ro;
  ro.tolerance = o.tolerance;
  const Vec3 sp3 = g.spacing();
  const double spacing = ndim == 2 ? 0.5 * (sp3[0] + sp3[1]) : (sp3[0] + sp3[1] + sp3[2]) / 3.0;

  // Smoothed, prefiltered frames are made once and kept (small next to the series: one float per voxel).
  std::vector<Coefficients<float>> coef(static_cast<size_t>(T));
  parallel_for(T, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      coef[static_cast<size_t>(t)] =
          spline_coefficients<float>(smooth(frame_of(series, t), o.fwhm).view(), ndim, o.degree, Mode::Mirror);
  });

  std::vector<std::vector<double>> theta(static_cast<size_t>(T), std::vector<double>(static_cast<size_t>(np), 0.0));
  RealignResult res;
  res.iterations.assign(static_cast<size_t>(T), 0);
  const int passes = o.to_mean ? 2 : 1;
  for (int pass = 0; pass < passes; ++pass) {
    Image<float> ref;
    if (pass == 0) {
      ref = smooth(frame_of(series, o.ref_frame), o.fwhm);
    } else { // the mean of the frames aligned by the first pass (linear reslicing)
      std::vector<Mat4> m1;
      for (int64_t t = 0; t < T; ++t) m1.push_back(affine_model_matrix(P.model, theta[static_cast<size_t>(t)]));
      Image<float> mean;
      reslice_series(series, m1, 1, nullptr, &mean);
      ref = smooth(mean, o.fwhm);
    }
    RealignOptions po = o;
    if (passes == 2 && pass == 0) po.sep = 2 * o.sep; // the first pass only makes the mean
    reg::Level L = reference_level(ref, weight, po);
    res.samples = L.count;
    P.scale.assign(static_cast<size_t>(np), reg::sample_radius(L, P.model.centre));
    for (int d = 0; d < ndim; ++d) P.scale[static_cast<size_t>(d)] = 1.0;
    // Frames in fixed chunks of kChunk (the chunks do not depend on the thread count, so neither
    // do the results), chunks in parallel; inside a chunk each frame starts from its neighbour's
    // estimate, visiting the frames outwards from the reference when the chunk holds it.
    const int64_t nch = (T + kChunk - 1) / kChunk;
    std::mutex mu;
    int done = 0;
    parallel_for(nch, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t ch = c0; ch < c1; ++ch) {
        reg::Level Lc = L;
        reg::Problem Pc = P;
        const int64_t f0 = ch * kChunk, f1 = std::min(T, f0 + kChunk);
        const int64_t start = (pass == 0 && o.ref_frame >= f0 && o.ref_frame < f1) ? o.ref_frame : f0;
        std::vector<int64_t> order;
        for (int64_t t = start; t < f1; ++t) order.push_back(t);
        for (int64_t t = start - 1; t >= f0; --t) order.push_back(t);
        for (int64_t t : order) {
          if (pass == 0 && t == o.ref_frame) { // the reference itself: identity
            theta[static_cast<size_t>(t)].assign(static_cast<size_t>(np), 0.0);
            continue;
          }
          // Warm start. Pass 1: the neighbour's estimate in the chunk (identity for the chunk's
          // first frame). Pass 2: the frame's own first-pass estimate -- the mean lies in the first
          // frame's space, so it is already close.
          const int64_t nb = t == start ? -1 : (t > start ? t - 1 : t + 1);
          if (pass == 1) Pc.theta = theta[static_cast<size_t>(t)];
          else if (nb >= 0) Pc.theta = theta[static_cast<size_t>(nb)];
          else Pc.theta.assign(static_cast<size_t>(np), 0.0);
          Lc.coef = coef[static_cast<size_t>(t)];
          const SolveResult sr = reg::optimise_level(Lc, Pc, Optimizer::GaussNewton, o.iterations, ro, spacing, {});
          theta[static_cast<size_t>(t)] = Pc.theta;
          res.iterations[static_cast<size_t>(t)] = sr.iterations;
        }
        if (progress) {
          std::lock_guard<std::mutex> lock(mu);
          done += int(f1 - f0);
          progress(done, int(T), pass, passes);
        }
      }
    });
  }
  for (int64_t t = 0; t < T; ++t) res.matrices.push_back(affine_model_matrix(P.model, theta[static_cast<size_t>(t)]));
  motion_summaries(g, res);
  return res;
}

double jenkinson_rms(const Mat4& m1, const Mat4& m2, const Vec3& c, double radius) {
  const Mat4 D = m2 * m1.inverse() - Mat4::Identity();
  const Eigen::Matrix3d A = D.topLeftCorner<3, 3>();
  const Vec3 t = D.topRightCorner<3, 1>();
  const Vec3 u = t + A * c;
  return std::sqrt(radius * radius / 5.0 * (A.transpose() * A).trace() + u.squaredNorm());
}

void motion_summaries(const Geometry& g, RealignResult& r) {
  const size_t T = r.matrices.size();
  r.spm.assign(T, {});
  r.fsl.assign(T, {});
  r.fd.assign(T, 0.0);
  r.rmsd.assign(T, 0.0);
  const Eigen::Vector4d cw = fsl_scaled_voxel_matrix(g) * g.centre_voxel();
  const Vec3 c_fsl(cw[0], cw[1], cw[2]);
  std::vector<Mat4> flirt(T);
  for (size_t t = 0; t < T; ++t) {
    // SPM: rp = spm_imatrix(M_t_new / M_0_new), M_new = T^-1 M (frames share the series' matrix),
    // spm_matrix(q) = Trans * R1(pitch) * R2(roll) * R3(yaw) about the world origin.
    const Mat4 Q = r.matrices[t].inverse() * r.matrices[0];
    const Eigen::Matrix3d R = Q.topLeftCorner<3, 3>();
    r.spm[t] = {Q(0, 3), Q(1, 3), Q(2, 3), std::atan2(R(1, 2), R(2, 2)), std::asin(std::clamp(R(0, 2), -1.0, 1.0)),
                std::atan2(R(0, 1), R(0, 0))};
    // FSL/MCFLIRT: the FLIRT matrix frame -> reference in scaled-voxel mm, decomposed as FSL's
    // decompose_aff: R = Rx Ry Rz (FSL's sign convention), translation about the volume centre.
    flirt[t] = ras_pullback_to_fsl(r.matrices[t], g, g);
    const Eigen::Matrix3d F = flirt[t].topLeftCorner<3, 3>();
    const double cy = std::sqrt(F(0, 0) * F(0, 0) + F(0, 1) * F(0, 1));
    const Vec3 tr = flirt[t].topRightCorner<3, 1>() + (F - Eigen::Matrix3d::Identity()) * c_fsl;
    r.fsl[t] = {std::atan2(F(1, 2), F(2, 2)), std::atan2(-F(0, 2), cy), std::atan2(F(0, 1), F(0, 0)), tr[0], tr[1], tr[2]};
    if (t > 0) {
      double fd = 0;
      for (int k = 0; k < 3; ++k) fd += 50.0 * std::abs(r.fsl[t][k] - r.fsl[t - 1][k]);
      for (int k = 3; k < 6; ++k) fd += std::abs(r.fsl[t][k] - r.fsl[t - 1][k]);
      r.fd[t] = fd;
      r.rmsd[t] = jenkinson_rms(flirt[t - 1], flirt[t], c_fsl, 80.0);
    }
  }
}

namespace {
std::string rows(const std::vector<std::array<double, 6>>& v, const char* fmt, const char* sep) {
  std::ostringstream o;
  char buf[64];
  for (const auto& r : v) {
    for (int k = 0; k < 6; ++k) {
      std::snprintf(buf, sizeof buf, fmt, r[static_cast<size_t>(k)]);
      o << (k ? sep : "") << buf;
    }
    o << "\n";
  }
  return o.str();
}
} // namespace

std::string spm_rp_text(const RealignResult& r) { return rows(r.spm, "%16.10f", " "); }
std::string fsl_par_text(const RealignResult& r) { return rows(r.fsl, "%.8f", "  "); }

std::string itk_transforms_text(const RealignResult& r) {
  std::ostringstream o;
  o << "#Insight Transform File V1.0\n";
  for (size_t t = 0; t < r.matrices.size(); ++t) {
    std::string one = itk_affine_text(r.matrices[t]);
    one = one.substr(one.find('\n') + 1);                   // drop the file header line
    one = one.substr(one.find('\n') + 1);                   // and "#Transform 0"
    o << "#Transform " << t << "\n" << one;
  }
  return o.str();
}

} // namespace voxalign
