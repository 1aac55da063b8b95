// 4D realignment on the registration engine (docs/realign.md).
#include "voxalign/realign/realign.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <future>
#include <numeric>
#include <mutex>
#include <sstream>

#include "voxalign/register/engine.hpp"
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

Geometry frame_geometry(const Geometry& g4) {
  Geometry g = g4;
  g.dims[3] = 1;
  g.ndim = 3;
  return g;
}

void check_finite(const float* d, int64_t n, int64_t t) {
  for (int64_t q = 0; q < n; ++q)
    VX_CHECK(std::isfinite(d[q]), InvalidArgument, "frame ", t, " has a non-finite value (NaN or Inf) at voxel ", q);
}

/// Frame t of `src` as a 3D image (checked to be finite when `check`).
void read_frame(const FrameSource& src, int64_t t, bool check, Image<float>& f) {
  if (f.size() != src.geometry.frame_size()) f = Image<float>(frame_geometry(src.geometry), no_init);
  src.read(t, f.data());
  if (check) check_finite(f.data(), f.size(), t);
}

/// The frames in fixed chunks of kChunk (chunks, hence results, do not depend on the thread count),
/// read in increasing order a group of chunks at a time (two per thread: only two groups' frames are
/// in memory, and a gzip stream is decompressed once per sweep); the chunks of a group run in
/// parallel, work(chunk, its frames), while another thread reads the next group. group_done(c0, c1)
/// runs after each group, on this thread; setup(G) first, with the chunks per group (chunk c's slot
/// in per-group buffers: c % G).
void for_chunks(const FrameSource& src, bool check, const std::function<void(int64_t, Image<float>*)>& work,
                const std::function<void(int64_t, int64_t)>& group_done = {},
                const std::function<void(int64_t)>& setup = {}) {
  const int64_t T = src.geometry.dims[3], nch = (T + kChunk - 1) / kChunk;
  const int64_t G = std::min<int64_t>(nch, std::max(1, 2 * num_threads()));
  if (setup) setup(G); // chunks per group
  std::vector<Image<float>> cur(static_cast<size_t>(G * kChunk)), next(cur.size());
  const auto load = [&](int64_t c0, std::vector<Image<float>>* buf) {
    for (int64_t t = c0 * kChunk; t < std::min(T, (c0 + G) * kChunk); ++t)
      read_frame(src, t, check, (*buf)[static_cast<size_t>(t - c0 * kChunk)]);
  };
  load(0, &cur);
  for (int64_t c0 = 0; c0 < nch; c0 += G) {
    const int64_t c1 = std::min(nch, c0 + G);
    std::future<void> ahead; // its destructor waits: the reader never outlives an error here
    if (c1 < nch) ahead = std::async(std::launch::async, load, c1, &next);
    parallel_for(c1 - c0, 1, [&](int64_t a, int64_t b) {
      for (int64_t c = a; c < b; ++c) work(c0 + c, cur.data() + c * kChunk);
    });
    if (group_done) group_done(c0, c1);
    if (ahead.valid()) ahead.get(); // a read error surfaces here
    std::swap(cur, next);
  }
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

void check_series(const Geometry& g) {
  VX_CHECK(g.dims[3] >= 2, InvalidArgument, g.dims[3] == 1 ? "the image is 3D (one frame): realign needs a 4D time series"
                                                         : "the time series has no frame");
}

} // namespace

FrameSource frames_of(const Image<float>& series) {
  return {series.geometry(), [&series](int64_t t, float* dst) {
            const int64_t n = series.geometry().frame_size();
            std::copy(series.data() + t * n, series.data() + (t + 1) * n, dst);
          }};
}

namespace {
void reslice_one(ImageView<const float> frame, const Geometry& g, const Mat4& pullback, int degree, ImageView<float> out) {
  ResampleOptions ro;
  ro.order = degree;
  ro.mode = Mode::GridConstant;
  resample_into<float>(frame, g.affine, interpolated_axes(g), out, g.affine, pullback, ro);
}
} // namespace

void reslice_frame(const Image<float>& series, int64_t t, const Mat4& pullback, int degree, ImageView<float> out) {
  reslice_one(ImageView<const float>(series.view()).frame(t), series.geometry(), pullback, degree, out);
}

void reslice_series(const FrameSource& src, const std::vector<Mat4>& pullbacks, int degree, const FrameSink& sink,
                    Image<float>* mean, const ResliceProgress& progress, const FrameReslicer& reslicer) {
  const Geometry& g = src.geometry;
  const int64_t T = g.dims[3], n = g.frame_size();
  VX_CHECK(int64_t(pullbacks.size()) == T, InvalidArgument, "reslice: ", T, " transforms needed, got ", pullbacks.size());
  const Geometry g3 = frame_geometry(g);
  std::vector<double> acc(mean ? static_cast<size_t>(n) : 0, 0.0);
  std::vector<std::vector<double>> part; // per chunk of the group
  std::vector<Image<float>> outs;        // the group's resliced frames, handed to the sink in order
  std::mutex mu;
  int done = 0;
  for_chunks(
      src, false,
      [&](int64_t ch, Image<float>* frames) {
        const int64_t f0 = ch * kChunk, f1 = std::min(T, f0 + kChunk);
        const size_t slot = static_cast<size_t>(ch % int64_t(part.size()));
        Image<float> tmp;
        if (mean) part[slot].assign(static_cast<size_t>(n), 0.0);
        for (int64_t t = f0; t < f1; ++t) {
          Image<float>& dst = sink ? outs[slot * kChunk + size_t(t - f0)] : tmp;
          if (dst.size() != n) dst = Image<float>(g3, no_init);
          const ImageView<const float> in(frames[t - f0].view());
          if (reslicer) reslicer(in, pullbacks[static_cast<size_t>(t)], dst.view());
          else reslice_one(in, g, pullbacks[static_cast<size_t>(t)], degree, dst.view());
          if (mean) {
            double* m = part[slot].data();
            for (int64_t q = 0; q < n; ++q) m[q] += dst.data()[q];
          }
        }
        if (progress) {
          std::lock_guard<std::mutex> lock(mu);
          done += int(f1 - f0);
          progress(done, int(T));
        }
      },
      [&](int64_t c0, int64_t c1) { // in chunk order: the same sums and the same output for any thread count
        for (int64_t ch = c0; ch < c1; ++ch) {
          const size_t slot = static_cast<size_t>(ch % int64_t(part.size()));
          if (mean)
            for (int64_t q = 0; q < n; ++q) acc[static_cast<size_t>(q)] += part[slot][static_cast<size_t>(q)];
          if (sink)
            for (int64_t t = ch * kChunk; t < std::min(T, (ch + 1) * kChunk); ++t)
              sink(t, outs[slot * kChunk + size_t(t - ch * kChunk)].data());
        }
      },
      [&](int64_t groups) {
        part.resize(static_cast<size_t>(groups));
        if (sink) outs.resize(static_cast<size_t>(groups * kChunk));
      });
  if (mean) {
    *mean = Image<float>(g3, no_init);
    for (int64_t q = 0; q < n; ++q) mean->data()[q] = float(acc[static_cast<size_t>(q)] / double(T));
  }
}

void reslice_series(const Image<float>& series, const std::vector<Mat4>& pullbacks, int degree, Image<float>* out,
                    Image<float>* mean, const ResliceProgress& progress) {
  const int64_t n = series.geometry().frame_size();
  if (out) *out = Image<float>(series.geometry(), no_init);
  FrameSink sink;
  if (out) sink = [out, n](int64_t t, const float* f) { std::copy(f, f + n, out->data() + t * n); };
  reslice_series(frames_of(series), pullbacks, degree, sink, mean, progress);
}

RealignResult realign(const Image<float>& series, const RealignOptions& o, const Image<float>* weight,
                      const RealignProgress& progress) {
  return realign(frames_of(series), o, weight, progress);
}

RealignResult realign(const FrameSource& src, const RealignOptions& o, const Image<float>* weight,
                      const RealignProgress& progress) {
  const Geometry& g = src.geometry;
  check_series(g);
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

  std::vector<std::vector<double>> theta(static_cast<size_t>(T), std::vector<double>(static_cast<size_t>(np), 0.0));
  RealignResult res;
  res.iterations.assign(static_cast<size_t>(T), 0);
  const int passes = o.to_mean ? 2 : 1;
  for (int pass = 0; pass < passes; ++pass) {
    Image<float> ref;
    if (pass == 0) {
      Image<float> f;
      read_frame(src, o.ref_frame, true, f);
      ref = smooth(f, o.fwhm);
    } else { // the mean of the frames aligned by the first pass (linear reslicing)
      std::vector<Mat4> m1;
      for (int64_t t = 0; t < T; ++t) m1.push_back(affine_model_matrix(P.model, theta[static_cast<size_t>(t)]));
      Image<float> mean;
      reslice_series(src, m1, 1, {}, &mean);
      ref = smooth(mean, o.fwhm);
    }
    RealignOptions po = o;
    if (passes == 2 && pass == 0) po.sep = 2 * o.sep; // the first pass only makes the mean
    reg::Level L = reference_level(ref, weight, po);
    res.samples = L.count;
    P.scale.assign(static_cast<size_t>(np), reg::sample_radius(L, P.model.centre));
    for (int d = 0; d < ndim; ++d) P.scale[static_cast<size_t>(d)] = 1.0;
    // Frames in chunks (for_chunks), each frame smoothed and prefiltered when its turn comes and
    // dropped after; inside a chunk each frame starts from its neighbour's estimate, visiting the
    // frames outwards from the reference when the chunk holds it.
    std::mutex mu;
    int done = 0;
    for_chunks(src, pass == 0, [&](int64_t ch, Image<float>* frames) {
      {
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
          Lc.coef = spline_coefficients<float>(smooth(frames[t - f0], o.fwhm).view(), ndim, o.degree, Mode::Mirror);
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
