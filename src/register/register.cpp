// Rigid / similarity / affine registration driver: pyramid, parameter scaling, chain rule through
// the transform's exact Jacobian, optimisers (docs/register.md).
#include "voxalign/register/register.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "voxalign/register/engine.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/solve/solvers.hpp"

namespace voxalign {
namespace reg {

ParamEval eval_params(const Level& L, const Problem& P, const std::vector<double>& theta, bool grad, bool gn) {
  const Mat4 T = P.T0 * affine_model_matrix(P.model, theta);
  const Mat4 Minv = L.moving_affine.inverse();
  const Mat4 Mvox = Minv * T * L.fixed_affine;
  const Evaluation ev = evaluate_metric(L, P.metric, Mvox, grad, gn);
  ParamEval pe;
  pe.value = ev.value;
  pe.valid = ev.valid;
  if (!grad) return pe;
  const int D = L.ndim, nb = D * (D + 1), n = P.model.size();
  const std::vector<Mat4> dT = affine_model_jacobian(P.model, theta);
  Eigen::MatrixXd Dm(nb, n); // d Mvox(a, b) / d theta_j on the basis (a < D, b <= D; b = D -> column 3)
  for (int j = 0; j < n; ++j) {
    const Mat4 dM = Minv * P.T0 * dT[static_cast<size_t>(j)] * L.fixed_affine;
    for (int a = 0; a < D; ++a)
      for (int b = 0; b <= D; ++b) Dm(a * (D + 1) + b, j) = dM(a, b == D ? 3 : b);
  }
  const Eigen::Map<const Eigen::VectorXd> G(ev.G.data(), nb);
  const Eigen::VectorXd g = Dm.transpose() * G;
  pe.grad.assign(g.data(), g.data() + n);
  if (gn) {
    const Eigen::Map<const Eigen::MatrixXd> H(ev.H.data(), nb, nb);
    pe.JtJ = Dm.transpose() * H * Dm;
  }
  return pe;
}

int64_t min_valid_samples(const Level& L) {
  int64_t usable = L.count;
  if (L.dense) usable = int64_t(std::count(L.inmask.begin(), L.inmask.end(), uint8_t(1)));
  return std::max<int64_t>(16, usable / 100);
}

SolveResult optimise_level(const Level& L, Problem& P, Optimizer opt, int iters, const RegisterOptions& o,
                           double level_spacing, const std::function<void(int evaluation, double metric)>& progress) {
  const int nf = int(P.free.size());
  auto to_theta = [&](const double* z) {
    std::vector<double> th = P.theta;
    for (int j = 0; j < nf; ++j) th[static_cast<size_t>(P.free[j])] = z[j] / P.scale[static_cast<size_t>(P.free[j])];
    return th;
  };
  std::vector<double> z0(static_cast<size_t>(nf));
  for (int j = 0; j < nf; ++j) z0[static_cast<size_t>(j)] = P.theta[static_cast<size_t>(P.free[j])] * P.scale[static_cast<size_t>(P.free[j])];
  const int64_t min_valid = min_valid_samples(L);
  int evals = 0;
  auto fg = [&](const double* z, double* g) {
    const ParamEval pe = eval_params(L, P, to_theta(z), true, false);
    if (pe.valid < min_valid) return std::numeric_limits<double>::infinity();
    for (int j = 0; j < nf; ++j) g[j] = pe.grad[static_cast<size_t>(P.free[j])] / P.scale[static_cast<size_t>(P.free[j])];
    if (progress) progress(++evals, pe.value);
    return pe.value;
  };
  SolveResult sr;
  sr.x = z0;
  if (iters > 0) {
    if (opt == Optimizer::GaussNewton) {
      GNOptions go;
      go.max_iterations = iters;
      go.tol = o.tolerance;
      go.f_tol = 1e-12;
      sr = gauss_newton(
          [&](const double* z, double* JtJ, double* Jtr) {
            const ParamEval pe = eval_params(L, P, to_theta(z), true, true);
            if (pe.valid < min_valid) return std::numeric_limits<double>::infinity();
            for (int a = 0; a < nf; ++a) {
              const int pa = P.free[static_cast<size_t>(a)];
              Jtr[a] = pe.grad[static_cast<size_t>(pa)] / P.scale[static_cast<size_t>(pa)];
              for (int b = 0; b < nf; ++b) {
                const int pb = P.free[static_cast<size_t>(b)];
                JtJ[a * nf + b] = pe.JtJ(pa, pb) / (P.scale[static_cast<size_t>(pa)] * P.scale[static_cast<size_t>(pb)]);
              }
            }
            if (progress) progress(++evals, pe.value);
            return pe.value;
          },
          z0, go);
    } else if (opt == Optimizer::Adam) {
      AdamOptions ao;
      ao.max_iterations = iters;
      ao.learning_rate = o.learning_rate * level_spacing;
      sr = adam_minimize(fg, z0, ao);
    } else {
      LBFGSOptions lo;
      lo.max_iterations = iters;
      lo.memory = opt == Optimizer::GradientDescent ? 0 : 7;
      lo.tol = o.tolerance;
      lo.f_tol = 1e-10;
      lo.max_step = 2.0 * level_spacing; // no step moves points by more than two level voxels
      sr = lbfgs_minimize(fg, z0, lo);
    }
  }
  P.theta = to_theta(sr.x.data());
  return sr;
}

namespace {

Vec3 centre_of_mass(const Image<float>& img, const Image<float>* mask) {
  const Geometry& g = img.geometry();
  double s = 0, c[3] = {0, 0, 0};
  for (int64_t k = 0; k < g.dims[2]; ++k)
    for (int64_t j = 0; j < g.dims[1]; ++j)
      for (int64_t i = 0; i < g.dims[0]; ++i) {
        const int64_t u = i + g.dims[0] * (j + g.dims[1] * k);
        if (mask && mask->data()[u] == 0.0f) continue;
        const double w = std::max(0.0f, img.data()[u]);
        s += w, c[0] += w * i, c[1] += w * j, c[2] += w * k;
      }
  VX_CHECK(s > 0, InvalidArgument, "--init moments: the image has no positive intensity to take moments of");
  const Eigen::Vector4d v(c[0] / s, c[1] / s, c[2] / s, 1.0);
  return (g.affine * v).head<3>();
}

void check_image(const Image<float>& img, const char* what) {
  const Geometry& g = img.geometry();
  VX_CHECK(g.dims[3] == 1, InvalidArgument, "the ", what, " image is 4D (", g.dims[3],
           " frames); registration takes 3D or 2D images (use 'voxalign realign' for a time series)");
  for (int64_t i = 0; i < img.size(); ++i)
    VX_CHECK(std::isfinite(img.data()[i]), InvalidArgument, "the ", what, " image has a non-finite value (NaN or Inf) at voxel ", i);
}

void check_mask(const Image<float>* mask, const Image<float>& img, const char* what) {
  if (!mask) return;
  VX_CHECK(mask->geometry().same_grid(img.geometry()), InvalidArgument, "the ", what, " mask is not on the ", what,
           " image's grid (", mask->geometry().dims[0] == img.geometry().dims[0] &&
                   mask->geometry().dims[1] == img.geometry().dims[1] && mask->geometry().dims[2] == img.geometry().dims[2]
               ? "same size, different voxel->world matrix"
               : "different size",
           ")");
  bool any = false;
  for (int64_t i = 0; i < mask->size() && !any; ++i) any = mask->data()[i] != 0.0f;
  VX_CHECK(any, InvalidArgument, "the ", what, " mask is empty (no non-zero voxel)");
}

/// The images, masks and options every entry point validates.
void check_inputs(const Image<float>& fixed, const Image<float>& moving, const RegisterOptions& o,
                  const Image<float>* fixed_mask, const Image<float>* moving_mask) {
  check_image(fixed, "fixed");
  check_image(moving, "moving");
  const int nd = fixed.geometry().dims[2] == 1 ? 2 : 3;
  VX_CHECK((moving.geometry().dims[2] == 1 ? 2 : 3) == nd, InvalidArgument,
           "the fixed image is ", nd, "D and the moving image is not: register images of the same dimensionality");
  check_mask(fixed_mask, fixed, "fixed");
  check_mask(moving_mask, moving, "moving");
  VX_CHECK(o.degree >= 1 && o.degree <= 5, InvalidArgument, "estimation degree must be 1..5, got ", o.degree);
  VX_CHECK(o.bins >= 8 && o.bins <= 256, InvalidArgument, "mi bins must be 8..256, got ", o.bins);
  VX_CHECK(o.radius >= 1 && o.radius <= 32, InvalidArgument, "lncc radius must be 1..32, got ", o.radius);
  VX_CHECK(o.tolerance > 0, InvalidArgument, "tolerance must be positive");
  VX_CHECK(o.max_samples >= 64, InvalidArgument, "max_samples must be at least 64");
  VX_CHECK(!o.levels.empty(), InvalidArgument, "at least one pyramid level is needed");
  for (int s : o.levels) VX_CHECK(s >= 1 && s <= 64, InvalidArgument, "shrink factors must be 1..64, got ", s);
  VX_CHECK(o.smoothing.empty() || o.smoothing.size() == o.levels.size(), InvalidArgument, "smoothing: ",
           o.levels.size(), " values expected (one per level), got ", o.smoothing.size());
  for (double s : o.smoothing) VX_CHECK(s >= 0 && std::isfinite(s), InvalidArgument, "smoothing sigmas must be >= 0");
  {
    // A smoothing wider than the image means nothing, and its kernel would take the memory and time.
    const Geometry& fg = fixed.geometry();
    double extent = 0;
    for (int d = 0; d < 3; ++d) extent = std::max(extent, double(fg.dims[d]) * fg.spacing()[d]);
    for (double s : o.smoothing)
      VX_CHECK(s <= extent, InvalidArgument, "--smoothing: ", s, " mm is wider than the fixed image (", extent,
               " mm across); give sigmas in mm, at most the image's size");
  }
  VX_CHECK(o.iterations.empty() || o.iterations.size() == 1 || o.iterations.size() == o.levels.size(), InvalidArgument,
           "iterations: one value or one per level");
  for (int it : o.iterations) VX_CHECK(it >= 0, InvalidArgument, "iterations must be >= 0");
}

/// Refuse, before any pyramid is built, images that do not overlap at the start: fewer than 16 fixed
/// voxels (on a lattice of at most about 2^20 of them) map inside the moving grid. Without it, a
/// moving image with absurd voxels (1e-5 mm) built its pyramid for minutes before saying so.
void check_initial_overlap(const Image<float>& fixed, const Image<float>& moving, const Problem& P) {
  const Geometry &fg = fixed.geometry(), &mg = moving.geometry();
  const Mat4 M = mg.affine.inverse() * P.T0 * affine_model_matrix(P.model, P.theta) * fg.affine;
  if (!M.allFinite()) return; // a degenerate geometry: the level's own checks report it
  int64_t step = 1;
  while ((fg.dims[0] / step + 1) * (fg.dims[1] / step + 1) * (fg.dims[2] / step + 1) > (int64_t(1) << 20)) ++step;
  const auto [inside, total] = voxels_inside(fg, mg, M, step);
  VX_CHECK(inside >= std::min<int64_t>(16, total), InvalidArgument, "the images do not overlap at the initial transform (",
           inside, " of ", total, " fixed voxels checked map inside the moving image); check the images' world geometry "
           "(voxel sizes, origins) or give --init");
}

/// Set up the model, centre, start and scaling; validates the options.
Problem make_problem(const Image<float>& fixed, const Image<float>& moving, const RegisterOptions& o,
                     const Image<float>* fixed_mask, const Image<float>* moving_mask) {
  check_inputs(fixed, moving, o, fixed_mask, moving_mask);
  const int nd = fixed.geometry().dims[2] == 1 ? 2 : 3;
  Problem P;
  P.metric = o.metric;
  VX_CHECK(o.optimizer != Optimizer::GaussNewton || P.metric == Metric::SSD, InvalidArgument,
           "the Gauss-Newton optimizer needs a least-squares metric (ssd); use lbfgs for ", metric_names().name(o.metric));
  P.model.ndim = nd;
  P.model.groups = transform_groups(o.transform);
  for (const auto& f : o.freeze) {
    const std::string g = f == "zoom" && o.transform == TransformType::Similarity ? "scale" : f;
    VX_CHECK(g == "translation" || g == "rotation" || g == "scale" || g == "zoom" || g == "shear", InvalidArgument,
             "--freeze: unknown group '", f, "' (use translation, rotation, scale, zoom, shear)");
  }
  const Vec3 cf = fixed.geometry().centre(), cm = moving.geometry().centre();
  Vec3 centre = cf, shift = Vec3::Zero();
  if (o.has_init_matrix) {
    P.T0 = o.init_matrix;
    VX_CHECK(P.T0.allFinite() && std::abs(P.T0.topLeftCorner<3, 3>().determinant()) > 1e-12, InvalidArgument,
             "the initial transform is not an invertible affine map");
  } else if (o.init == RegisterInit::Center) {
    shift = cm - cf;
  } else if (o.init == RegisterInit::Moments) {
    centre = centre_of_mass(fixed, fixed_mask);
    shift = centre_of_mass(moving, moving_mask) - centre;
  }
  if (nd == 2) shift[2] = 0;
  P.model.centre = centre;
  const int n = P.model.size();
  P.theta.assign(static_cast<size_t>(n), 0.0);
  size_t k = 0;
  for (const auto& g : P.model.groups) {
    const int gs = affine_group_size(g, nd);
    const bool frozen = std::find_if(o.freeze.begin(), o.freeze.end(), [&](const std::string& f) {
                          return f == g || (f == "zoom" && g == "scale") || (f == "scale" && g == "zoom");
                        }) != o.freeze.end();
    for (int q = 0; q < gs; ++q, ++k) {
      if (g == "translation") P.theta[k] = shift[q];
      if (!frozen) P.free.push_back(int(k));
    }
  }
  VX_CHECK(!P.free.empty(), InvalidArgument, "--freeze leaves no parameter to estimate");
  return P;
}

} // namespace

double metric_value_and_gradient(const Image<float>& fixed, const Image<float>& moving, const AffineModel& model,
                                 const Mat4& init, const std::vector<double>& theta, const RegisterOptions& opts,
                                 std::vector<double>* gradient, const Image<float>* fixed_mask,
                                 const Image<float>* moving_mask) {
  check_inputs(fixed, moving, opts, fixed_mask, moving_mask);
  Problem P;
  P.model = model;
  P.T0 = init;
  P.metric = opts.metric;
  const Level L = make_level(fixed, moving, fixed.geometry(), fixed_mask, moving.geometry(), moving_mask, P.metric, opts,
                             &fixed, &moving);
  const ParamEval pe = eval_params(L, P, theta, gradient != nullptr, false);
  if (gradient) *gradient = pe.grad;
  return pe.value;
}

} // namespace reg

const NameTable<TransformType>& transform_names() {
  static const NameTable<TransformType> t{"transform", {{TransformType::Translation, "translation"},
      {TransformType::Rigid, "rigid"}, {TransformType::Similarity, "similarity"}, {TransformType::Affine, "affine"},
      {TransformType::Syn, "syn"}}};
  return t;
}

const NameTable<Metric>& metric_names() {
  static const NameTable<Metric> t{"metric", {{Metric::SSD, "ssd"}, {Metric::NCC, "ncc"}, {Metric::LNCC, "lncc"},
      {Metric::MI, "mi"}}};
  return t;
}

const NameTable<Optimizer>& optimizer_names() {
  static const NameTable<Optimizer> t{"optimizer", {{Optimizer::Auto, "auto"}, {Optimizer::GaussNewton, "gn"},
      {Optimizer::LBFGS, "lbfgs"}, {Optimizer::GradientDescent, "gd"}, {Optimizer::Adam, "adam"}}};
  return t;
}

const NameTable<RegisterInit>& init_names() {
  static const NameTable<RegisterInit> t{"init", {{RegisterInit::Center, "center"},
      {RegisterInit::Moments, "moments"}, {RegisterInit::Identity, "identity"}}};
  return t;
}

std::vector<std::string> transform_groups(TransformType t) {
  switch (t) {
  case TransformType::Translation: return {"translation"};
  case TransformType::Rigid: return {"translation", "rotation"};
  case TransformType::Similarity: return {"translation", "rotation", "scale"};
  case TransformType::Affine: return {"translation", "rotation", "zoom", "shear"};
  case TransformType::Syn:
    throw InvalidArgument("transform syn is deformable: it has no affine parameters (use register_deformable)");
  }
  throw InvalidArgument("unknown transform type");
}

std::string parameter_summary(const RegisterResult& r) {
  const int nd = r.model.ndim;
  std::string out;
  size_t p = 0;
  for (const auto& g : r.model.groups) {
    const int n = affine_group_size(g, nd);
    VX_CHECK(p + size_t(n) <= r.parameters.size(), InvalidArgument, "parameter_summary: ", r.parameters.size(),
             " parameters for the groups of this model");
    // rotations in degrees; scales and zooms as factors (1 + parameter); the rest as stored
    const double mul = g == "rotation" ? 180.0 / M_PI : 1.0, add = g == "scale" || g == "zoom" ? 1.0 : 0.0;
    const char* fmt = g == "translation" || g == "rotation" ? "%.3f" : "%.5f";
    std::string values;
    for (int q = 0; q < n; ++q) {
      char buf[64];
      std::snprintf(buf, sizeof buf, fmt, add + mul * r.parameters[p + size_t(q)]);
      std::string v = buf;
      if (v.find_first_not_of("-0.") == std::string::npos) v.erase(0, v[0] == '-'); // no "-0.000"
      values += (q ? ", " : "") + v;
    }
    p += size_t(n);
    out += (out.empty() ? "" : ", ") + g + " " + (n > 1 ? "(" + values + ")" : values);
    if (g == "translation") out += " mm";
    else if (g == "rotation") out += " deg";
  }
  return out;
}

RegisterResult register_images(const Image<float>& fixed, const Image<float>& moving, const RegisterOptions& o,
                               const Image<float>* fixed_mask, const Image<float>* moving_mask,
                               const RegisterProgress& progress) {
  using namespace reg;
  Problem P = make_problem(fixed, moving, o, fixed_mask, moving_mask);
  check_initial_overlap(fixed, moving, P);
  const Optimizer opt =
      o.optimizer == Optimizer::Auto ? (P.metric == Metric::SSD ? Optimizer::GaussNewton : Optimizer::LBFGS) : o.optimizer;
  const Vec3 fsp = fixed.geometry().spacing();
  const double fmean = P.model.ndim == 2 ? 0.5 * (fsp[0] + fsp[1]) : fsp.mean();
  RegisterResult res;
  const int nlev = int(o.levels.size());
  auto sigma_of = [&](int li) {
    const int shrink = o.levels[static_cast<size_t>(li)];
    return o.smoothing.empty() ? (shrink > 1 ? 0.5 * shrink * fmean : 0.0) : o.smoothing[static_cast<size_t>(li)];
  };
  // Pyramid images, built fine to coarse so that each derives from the previous one.
  Pyramid fpyr(fixed), mpyr(moving);
  {
    std::vector<int> order(static_cast<size_t>(nlev));
    for (int li = 0; li < nlev; ++li) order[static_cast<size_t>(li)] = li;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return o.levels[static_cast<size_t>(a)] < o.levels[static_cast<size_t>(b)] ||
             (o.levels[static_cast<size_t>(a)] == o.levels[static_cast<size_t>(b)] && sigma_of(a) < sigma_of(b));
    });
    for (int li : order) {
      const int s = o.levels[static_cast<size_t>(li)];
      fpyr.get(s, sigma_of(li));
      mpyr.get(moving_shrink(fixed.geometry(), moving.geometry(), s), sigma_of(li));
    }
  }
  for (int li = 0; li < nlev; ++li) {
    const int shrink = o.levels[static_cast<size_t>(li)];
    const double sigma = sigma_of(li);
    const Level L = make_level(fpyr.get(shrink, sigma), mpyr.get(moving_shrink(fixed.geometry(), moving.geometry(), shrink), sigma),
                               fixed.geometry(), fixed_mask, moving.geometry(), moving_mask, P.metric, o, &fixed, &moving);
    if (li == 0) {
      // Scale rotations, scales and shears by the RMS radius of the samples about the centre, so
      // that one unit of every scaled parameter moves points by about 1 mm.
      const double R = sample_radius(L, P.model.centre);
      P.scale.clear();
      for (const auto& g : P.model.groups) {
        const int gs = affine_group_size(g, P.model.ndim);
        for (int q = 0; q < gs; ++q) P.scale.push_back(g == "translation" ? 1.0 : R);
      }
    }
    {
      const ParamEval start = eval_params(L, P, P.theta, false, false);
      VX_CHECK(start.valid >= min_valid_samples(L), InvalidArgument, "the images do not overlap ",
               li == 0 ? "at the initial transform" : "at the start of a finer level", " (", start.valid, " of ", L.count,
               " fixed samples map inside the moving image", moving_mask ? " and its mask" : "",
               L.mfill.bits.empty() ? "" : " away from its zero-valued (fill) voxels",
               "); check the images' world geometry or give --init",
               L.mfill.bits.empty() ? "" : " (or compare fill too: --keep-fill, skip_fill=False)");
    }
    const int iters = o.iterations.empty() ? (opt == Optimizer::GaussNewton ? 40 : 100)
                      : o.iterations.size() == 1 ? o.iterations[0] : o.iterations[static_cast<size_t>(li)];
    std::function<void(int, double)> level_progress;
    if (progress) level_progress = [&](int ev, double v) { progress(RegisterStep{li, nlev, ev, iters, v}); };
    const SolveResult sr = optimise_level(L, P, opt, iters, o, shrink * fmean, level_progress);
    RegisterLevel rl;
    rl.shrink = shrink;
    rl.sigma_mm = sigma;
    rl.samples = L.count;
    rl.iterations = sr.iterations;
    rl.metric = eval_params(L, P, P.theta, false, false).value;
    res.levels.push_back(rl);
  }
  res.model = P.model;
  res.init = P.T0;
  res.parameters = P.theta;
  res.names = P.model.names();
  res.matrix = P.T0 * affine_model_matrix(P.model, P.theta);
  res.metric = res.levels.back().metric;
  return res;
}

} // namespace voxalign
