// superres: the driver (docs/superres.md). Motions start from a rigid registration of each stack to
// the first; then reconstruction (CG on the normal equations) and motion updates (Gauss-Newton per
// motion group) alternate.
#include "voxalign/superres/superres.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "model.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/register/register.hpp"
#include "voxalign/solve/solvers.hpp"

namespace voxalign {
using namespace superres_detail;
namespace {

/// Weight of the slice-motion prior relative to the data's curvature (update_motion).
constexpr double kSlicePrior = 0.02;

double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 8e9;
}

int profile_samples(double thickness, double fine_mm) {
  const double sigma = thickness / (2.0 * std::sqrt(2.0 * std::log(2.0)));
  return 2 * std::max(1, int(std::lround(2.5 * sigma / fine_mm))) + 1;
}

/// The output grid's mask: nearest voxel of `mask` (non-zero) at each output voxel's world position.
std::vector<float> mask_on_grid(const Image<float>& mask, const Geometry& hr) {
  const Geometry& gm = mask.geometry();
  const Mat4 P = gm.affine.inverse() * hr.affine;
  std::vector<float> out(size_t(hr.size()), 0.0f);
  const auto mv = mask.view();
  parallel_for(hr.dims[2], 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t j = 0; j < hr.dims[1]; ++j)
        for (int64_t i = 0; i < hr.dims[0]; ++i) {
          const Eigen::Vector4d p = P * Eigen::Vector4d(double(i), double(j), double(k), 1.0);
          int64_t c[3];
          bool in = true;
          for (int d = 0; d < 3; ++d) {
            c[d] = std::llround(p[d]);
            in = in && c[d] >= 0 && c[d] < gm.dims[size_t(d)];
          }
          if (in && mv(c[0], c[1], c[2]) != 0) out[size_t((k * hr.dims[1] + j) * hr.dims[0] + i)] = 1.0f;
        }
  });
  return out;
}

struct Recon {
  const SuperresOptions& o;
  Geometry hr;
  Mat4 w2v;
  std::vector<StackModel> stacks;
  std::vector<float> hr_mask;              // empty: no mask
  std::vector<std::vector<double>> robust; // per stack, per slice
  std::vector<double> x;
  std::vector<Mat4> stack_motion; // slice motion: each stack's motion after the stack-level round
  int cg_total = 0;
  std::vector<float> fine, tmp;

  Image<float> as_image(const double* v) const {
    Image<float> im(hr, no_init);
    for (int64_t i = 0; i < hr.size(); ++i) im.data()[i] = float(v[i]);
    return im;
  }

  /// Data weights: the stack voxels whose profile lies inside the output grid (and touches the mask),
  /// times the slice's robust weight.
  void update_weights() {
    Image<float> ones(hr, 1.0f);
    const Coefficients<float> c1 = model_coefficients(ones.view());
    Coefficients<float> cm;
    if (!hr_mask.empty()) {
      Image<float> mk(hr, no_init);
      std::copy(hr_mask.begin(), hr_mask.end(), mk.data());
      cm = model_coefficients(mk.view());
    }
    for (size_t k = 0; k < stacks.size(); ++k) {
      StackModel& m = stacks[k];
      std::vector<float> cov(size_t(m.voxels())), inmask;
      apply_forward(m, c1, cov.data(), fine);
      if (!hr_mask.empty()) inmask.resize(cov.size()), apply_forward(m, cm, inmask.data(), fine);
      const int64_t plane = m.slice_size();
      for (int64_t v = 0; v < m.voxels(); ++v) {
        float w = cov[size_t(v)] > 0.99f ? 1.0f : 0.0f;
        if (!inmask.empty() && inmask[size_t(v)] < 0.01f) w = 0;
        m.weight[size_t(v)] = w * float(robust[k][size_t(v / plane)]);
      }
    }
  }

  void normal_apply(const double* v, double* out) {
    const Image<float> xf = as_image(v);
    const Coefficients<float> c = model_coefficients(xf.view());
    laplacian(v, out);
    Image<float> back(hr, no_init);
    for (const StackModel& m : stacks) {
      tmp.resize(size_t(m.voxels()));
      apply_forward(m, c, tmp.data(), fine);
      for (int64_t i = 0; i < m.voxels(); ++i) tmp[size_t(i)] *= m.weight[size_t(i)];
      apply_adjoint(m, tmp.data(), back.view(), fine);
      for (int64_t i = 0; i < hr.size(); ++i) out[i] += back.data()[i];
    }
  }

  /// out = lambda * (sum over axes of D^T D) v, forward differences with no flux across the edges.
  void laplacian(const double* v, double* out) const {
    const double lam = o.regularization;
    const int64_t n0 = hr.dims[0], n1 = hr.dims[1], n2 = hr.dims[2];
    parallel_for(n2, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t j = 0; j < n1; ++j)
          for (int64_t i = 0; i < n0; ++i) {
            const int64_t id = (k * n1 + j) * n0 + i;
            double acc = 0;
            if (i > 0) acc += v[id] - v[id - 1];
            if (i + 1 < n0) acc += v[id] - v[id + 1];
            if (j > 0) acc += v[id] - v[id - n0];
            if (j + 1 < n1) acc += v[id] - v[id + n0];
            if (k > 0) acc += v[id] - v[id - n0 * n1];
            if (k + 1 < n2) acc += v[id] - v[id + n0 * n1];
            out[id] = lam * acc;
          }
    });
  }

  /// sum_k A_k^T W_k u_k (u_k: the stacks' values, or A_k 1 when `ones`).
  std::vector<double> back_project(bool ones) {
    std::vector<double> acc(size_t(hr.size()), 0.0);
    Image<float> back(hr, no_init), one(hr, 1.0f);
    const Coefficients<float> c1 = model_coefficients(one.view());
    for (const StackModel& m : stacks) {
      tmp.resize(size_t(m.voxels()));
      if (ones) apply_forward(m, c1, tmp.data(), fine);
      else std::copy(m.y.data(), m.y.data() + m.voxels(), tmp.data());
      for (int64_t i = 0; i < m.voxels(); ++i) tmp[size_t(i)] *= m.weight[size_t(i)];
      apply_adjoint(m, tmp.data(), back.view(), fine);
      for (int64_t i = 0; i < hr.size(); ++i) acc[size_t(i)] += back.data()[i];
    }
    return acc;
  }

  void reconstruct() {
    const std::vector<double> rhs = back_project(false), d = back_project(true);
    std::vector<double> diag(d.size());
    double dmax = 0;
    for (double v : d) dmax = std::max(dmax, v);
    const int64_t n0 = hr.dims[0], n1 = hr.dims[1], n2 = hr.dims[2];
    for (int64_t k = 0; k < n2; ++k)
      for (int64_t j = 0; j < n1; ++j)
        for (int64_t i = 0; i < n0; ++i) {
          const size_t id = size_t((k * n1 + j) * n0 + i);
          const int nb = (i > 0) + (i + 1 < n0) + (j > 0) + (j + 1 < n1) + (k > 0) + (k + 1 < n2);
          diag[id] = std::max(d[id] + o.regularization * nb, 1e-6 * dmax + 1e-12);
        }
    if (x.empty()) { // start from the normalised back-projection (the naive average on the output grid)
      x.assign(rhs.size(), 0.0);
      for (size_t i = 0; i < rhs.size(); ++i) x[i] = d[i] > 1e-3 * dmax ? rhs[i] / d[i] : 0.0;
    }
    cg_total += conjugate_gradient([this](const double* v, double* out) { normal_apply(v, out); }, rhs, diag, x,
                                   o.cg_iterations, 1e-6, true);
  }

  /// Per stack voxel residuals A x - y.
  std::vector<std::vector<float>> residuals() {
    const Image<float> xf = as_image(x.data());
    const Coefficients<float> c = model_coefficients(xf.view());
    std::vector<std::vector<float>> r(stacks.size());
    for (size_t k = 0; k < stacks.size(); ++k) {
      const StackModel& m = stacks[k];
      r[k].resize(size_t(m.voxels()));
      apply_forward(m, c, r[k].data(), fine);
      for (int64_t i = 0; i < m.voxels(); ++i) r[k][size_t(i)] -= m.y.data()[i];
    }
    return r;
  }

  double residual_rms(const std::vector<std::vector<float>>& r) const {
    double s = 0, w = 0;
    for (size_t k = 0; k < stacks.size(); ++k)
      for (size_t i = 0; i < r[k].size(); ++i) {
        const double wi = stacks[k].weight[i];
        s += wi * double(r[k][i]) * r[k][i], w += wi;
      }
    return w > 0 ? std::sqrt(s / w) : 0.0;
  }

  /// Robust slice weights: a slice whose RMS residual e exceeds tau = median + 3 * 1.4826 MAD (over
  /// its stack's slices) gets weight (tau / e)^2.
  void update_robust(const std::vector<std::vector<float>>& r) {
    for (size_t k = 0; k < stacks.size(); ++k) {
      const StackModel& m = stacks[k];
      const int64_t plane = m.slice_size();
      std::vector<double> e(size_t(m.slices()), -1.0), valid;
      for (int64_t s = 0; s < m.slices(); ++s) {
        double acc = 0, w = 0;
        for (int64_t v = s * plane; v < (s + 1) * plane; ++v) {
          const double wi = robust[k][size_t(s)] > 0 ? m.weight[size_t(v)] / robust[k][size_t(s)] : 0.0;
          acc += wi * double(r[k][size_t(v)]) * r[k][size_t(v)], w += wi;
        }
        if (w > 0.1 * double(plane)) e[size_t(s)] = std::sqrt(acc / w), valid.push_back(e[size_t(s)]);
      }
      if (valid.size() < 3) continue;
      auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        const size_t h = v.size() / 2;
        return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
      };
      const double med = median(valid);
      std::vector<double> dev;
      for (double v : valid) dev.push_back(std::abs(v - med));
      const double tau = med + 3.0 * 1.4826 * median(dev);
      for (int64_t s = 0; s < m.slices(); ++s) {
        const double es = e[size_t(s)];
        robust[k][size_t(s)] = (es <= tau || es < 0) ? 1.0 : (tau / es) * (tau / es);
      }
    }
  }

  /// One Gauss-Newton solve for the motion of `slices` of stack k; the result multiplies the motions
  /// of `groups` (all groups of those slices) from the left. With `prior` (the stack's motion), the
  /// deviation from it costs 0.5 mu |d|^2 (d: translation at the group's centre in mm, rotation
  /// vector times kPriorRadius), mu = slice_prior x the data's mean curvature per mm: poorly
  /// determined directions of a thin slice stay near the stack's motion.
  void update_motion(StackModel& m, const Coefficients<float>& c, const std::vector<int64_t>& slices,
                     const std::vector<int>& groups, const Mat4* prior) {
    constexpr double kPriorRadius = 40.0; // mm: rotations weigh as the displacement they cause there
    const Mat4 T0 = m.motion[size_t(m.group[size_t(slices[0])])];
    Vec3 centre(0, 0, 0);
    const auto& d = m.y.geometry().dims;
    for (int64_t s : slices) centre += fine_world(m, d[0] / 2, d[1] / 2, s, m.nq / 2);
    centre = (T0 * (centre / double(slices.size())).homogeneous()).head<3>();
    // Deviation of T0 from the prior to first order, in the parameters' order.
    double d0[6] = {0, 0, 0, 0, 0, 0};
    if (prior) {
      const Mat4 D = T0 * prior->inverse();
      const Vec3 t = (D * centre.homogeneous()).head<3>() - centre;
      const Eigen::Matrix3d Rd = D.topLeftCorner<3, 3>();
      const double w[3] = {0.5 * (Rd(2, 1) - Rd(1, 2)), 0.5 * (Rd(0, 2) - Rd(2, 0)), 0.5 * (Rd(1, 0) - Rd(0, 1))};
      for (int j = 0; j < 3; ++j) d0[j] = t[j], d0[3 + j] = w[j];
    }
    double mu = -1;
    GNOptions go;
    go.max_iterations = o.gn_iterations;
    go.tol = 1e-5;
    go.f_tol = 1e-7;
    const Mat4 w2v_ = w2v;
    // Motions relative to T0, so that a stack-level update keeps each group's own T0.
    const SolveResult r = gauss_newton(
        [&](const double* th, double* JtJ, double* Jtr) {
          double f = motion_normal_equations(m, w2v_, c, slices, T0, centre, th, JtJ, Jtr);
          if (!prior) return f;
          if (mu < 0) mu = kSlicePrior * (JtJ[0] + JtJ[7] + JtJ[14]) / 3.0;
          for (int j = 0; j < 6; ++j) {
            const double s2 = j < 3 ? 1.0 : kPriorRadius * kPriorRadius, dev = th[j] + d0[j];
            f += 0.5 * mu * s2 * dev * dev;
            JtJ[7 * j] += mu * s2;
            Jtr[j] += mu * s2 * dev;
          }
          return f;
        },
        std::vector<double>(6, 0.0), go);
    const Mat4 R = rigid_matrix(r.x.data(), centre);
    for (int g : groups) m.motion[size_t(g)] = R * m.motion[size_t(g)];
    for (int64_t s : slices) update_slice_field(m, w2v, s);
  }

  void motions(bool per_group) {
    const Image<float> xf = as_image(x.data());
    const Coefficients<float> c = model_coefficients(xf.view());
    struct Task {
      size_t k;
      std::vector<int64_t> slices;
      std::vector<int> groups;
    };
    std::vector<Task> tasks;
    for (size_t k = 0; k < stacks.size(); ++k) {
      const StackModel& m = stacks[k];
      if (k == 0 && !o.slice_motion) continue; // the reference stack fixes the frame
      if (!per_group || m.ngroups == 1) {
        if (k == 0) continue;
        Task t{k, {}, {}};
        for (int64_t s = 0; s < m.slices(); ++s) t.slices.push_back(s);
        for (int g = 0; g < m.ngroups; ++g) t.groups.push_back(g);
        tasks.push_back(std::move(t));
      } else {
        for (int g = 0; g < m.ngroups; ++g) {
          Task t{k, {}, {g}};
          for (int64_t s = 0; s < m.slices(); ++s)
            if (m.group[size_t(s)] == g) t.slices.push_back(s);
          if (!t.slices.empty()) tasks.push_back(std::move(t));
        }
      }
    }
    // Groups are independent (distinct slices, fields and motions): many small ones run side by side.
    parallel_for(int64_t(tasks.size()), 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const Task& tk = tasks[size_t(t)];
        update_motion(stacks[tk.k], c, tk.slices, tk.groups,
                      per_group && !stack_motion.empty() ? &stack_motion[tk.k] : nullptr);
      }
    });
  }
};

} // namespace

void check_superres_options(const SuperresOptions& o) {
  VX_CHECK(std::isfinite(o.resolution) && o.resolution >= 0, InvalidArgument,
           "superres: resolution must be > 0 mm (or 0: the stacks' smallest in-plane spacing), got ", o.resolution);
  VX_CHECK(o.iterations >= 0 && o.iterations <= 100, InvalidArgument, "superres: iterations must be 0..100");
  VX_CHECK(std::isfinite(o.regularization) && o.regularization >= 0, InvalidArgument,
           "superres: regularization must be >= 0");
  VX_CHECK(o.cg_iterations >= 1, InvalidArgument, "superres: cg_iterations must be >= 1");
  VX_CHECK(o.gn_iterations >= 1, InvalidArgument, "superres: gn_iterations must be >= 1");
  VX_CHECK(o.slice_groups >= 0, InvalidArgument, "superres: slice_groups must be >= 0");
  VX_CHECK(o.slice_groups == 0 || o.slice_motion, InvalidArgument, "superres: slice_groups needs slice_motion");
  VX_CHECK(std::isfinite(o.max_memory_gb) && o.max_memory_gb >= 0, InvalidArgument, "superres: max_memory_gb must be >= 0");
}

Geometry superres_grid(const Geometry& first, double res) {
  const Vec3 sp = first.spacing();
  Geometry g;
  g.ndim = 3;
  Mat4 A = Mat4::Identity();
  Vec3 n;
  for (int d = 0; d < 3; ++d) {
    const double extent = double(first.dims[size_t(d)]) * sp[d];
    n[d] = std::max(1.0, std::ceil(extent / res - 1e-6));
    g.dims[size_t(d)] = int64_t(n[d]);
    A.block<3, 1>(0, d) = first.affine.block<3, 1>(0, d) / sp[d] * res;
  }
  const Vec3 centre = (first.affine * Eigen::Vector4d((first.dims[0] - 1) / 2.0, (first.dims[1] - 1) / 2.0,
                                                      (first.dims[2] - 1) / 2.0, 1.0)).head<3>();
  A.block<3, 1>(0, 3) = centre - A.topLeftCorner<3, 3>() * ((n - Vec3::Ones()) / 2.0);
  g.affine = A;
  g.dims[3] = 1;
  return g;
}

double superres_memory_bytes(const Geometry& hr, const std::vector<Geometry>& stacks) {
  const double res = hr.spacing().minCoeff();
  double bytes = double(hr.size()) * 112.0; // CG vectors in double, float copies of x
  for (const Geometry& g : stacks) {
    const Vec3 sp = g.spacing();
    const int nq = profile_samples(sp.maxCoeff(), res);
    bytes += double(g.size()) * (12.0 + 20.0 * nq);
  }
  return bytes;
}

SuperresResult superres(const std::vector<Image<float>>& in, const SuperresOptions& o, const Image<float>* mask) {
  check_superres_options(o);
  VX_CHECK(!in.empty(), InvalidArgument, "superres: no stacks");
  std::vector<Geometry> geoms;
  double res = o.resolution;
  for (size_t k = 0; k < in.size(); ++k) {
    const Geometry& g = in[k].geometry();
    VX_CHECK(g.dims[3] == 1, InvalidArgument, "superres: stack ", k + 1, " is 4D (", g.dims[3],
             " volumes); give 3D stacks");
    geoms.push_back(g);
    Vec3 sp = g.spacing();
    std::sort(sp.data(), sp.data() + 3);
    if (o.resolution == 0) res = res == 0 ? sp[0] : std::min(res, sp[0]);
  }
  const Geometry hr = superres_grid(in[0].geometry(), res);
  const double need = superres_memory_bytes(hr, geoms);
  const double have = o.max_memory_gb > 0 ? o.max_memory_gb * 1e9 : physical_memory_bytes();
  VX_CHECK(need <= have, InvalidArgument, "superres: an output of ", hr.dims[0], "x", hr.dims[1], "x", hr.dims[2],
           " voxels at ", res, " mm needs about ", need / 1e9, " GB, more than the ", have / 1e9,
           " GB available; choose a coarser resolution");

  Recon R{o, hr, hr.affine.inverse(), {}, {}, {}, {}, {}, 0, {}, {}};
  const int nsteps = int(in.size()) - 1 + 2 * o.iterations + 1;
  int step = 0;
  auto report = [&](const std::string& stage) {
    if (o.progress) o.progress({stage, double(step) / nsteps});
    ++step;
  };
  for (size_t k = 0; k < in.size(); ++k) {
    R.stacks.push_back(make_stack(in[k], res));
    StackModel& m = R.stacks.back();
    if (o.slice_motion) {
      const int64_t ns = m.slices();
      const int ng = o.slice_groups == 0 ? int(ns) : int(std::min<int64_t>(o.slice_groups, ns));
      m.ngroups = ng;
      for (int64_t s = 0; s < ns; ++s) m.group[size_t(s)] = int(s % ng);
    }
    Mat4 T = Mat4::Identity();
    if (k > 0 && o.register_init) {
      report("register " + std::to_string(k + 1) + "/" + std::to_string(in.size()));
      RegisterOptions ro;
      ro.transform = TransformType::Rigid;
      ro.init = RegisterInit::Identity;
      try {
        T = register_images(in[0], in[k], ro).matrix.inverse();
      } catch (const InvalidArgument&) {
        VX_CHECK(false, InvalidArgument, "superres: stack ", k + 1,
                 " does not overlap the first stack in world space (check the stacks' voxel sizes and origins)");
      }
    }
    m.motion.assign(size_t(m.ngroups), T);
    update_field(m, R.w2v);
    R.robust.emplace_back(size_t(m.slices()), 1.0);
  }
  if (mask) R.hr_mask = mask_on_grid(*mask, hr);
  R.update_weights();
  for (size_t k = 0; k < R.stacks.size(); ++k) {
    double w = 0;
    for (float v : R.stacks[k].weight) w += v;
    VX_CHECK(w > 0, InvalidArgument, "superres: stack ", k + 1,
             k == 0 ? " has no voxel inside the output grid and mask" : " does not overlap the first stack (and mask)");
  }
  SuperresResult res_out;
  for (int it = 0; it <= o.iterations; ++it) {
    report("reconstruct " + std::to_string(it + 1) + "/" + std::to_string(o.iterations + 1));
    R.reconstruct();
    auto r = R.residuals();
    res_out.residual_rms.push_back(R.residual_rms(r));
    if (it == o.iterations) {
      // The last reconstruction's residuals are those of the final model (no motion update follows).
      for (size_t k = 0; o.residuals && k < r.size(); ++k) {
        for (float& v : r[k]) v = -v; // y - A x
        res_out.residuals.push_back(on_stack_grid(R.stacks[k], r[k].data(), in[k].geometry()));
      }
      break;
    }
    report("motion " + std::to_string(it + 1) + "/" + std::to_string(o.iterations));
    // Slice motion: the first update moves whole stacks, the later ones each group.
    R.motions(o.slice_motion && it > 0);
    if (o.slice_motion && it == 0)
      for (const StackModel& m : R.stacks) R.stack_motion.push_back(m.motion[0]);
    if (o.slice_motion && o.outlier_rejection && it > 0) R.update_robust(r);
    R.update_weights();
  }
  if (o.progress) o.progress({"done", 1.0});

  res_out.image = R.as_image(R.x.data());
  if (!R.hr_mask.empty())
    for (int64_t i = 0; i < hr.size(); ++i)
      if (R.hr_mask[size_t(i)] == 0) res_out.image.data()[i] = 0;
  res_out.cg_iterations = R.cg_total;
  for (size_t k = 0; k < R.stacks.size(); ++k) {
    const StackModel& m = R.stacks[k];
    std::vector<Mat4> t;
    for (const Mat4& T : m.motion) t.push_back(T.inverse());
    res_out.transforms.push_back(t);
    res_out.slice_group.push_back(m.group);
    res_out.slice_axis.push_back(m.slice_axis);
    res_out.slice_weights.push_back(R.robust[k]);
    std::vector<int64_t> used(size_t(m.slices()), 0);
    for (int64_t v = 0; v < m.voxels(); ++v) used[size_t(v / m.slice_size())] += m.weight[size_t(v)] > 0;
    res_out.slice_voxels.push_back(used);
  }
  return res_out;
}

} // namespace voxalign
