#include "voxalign/warp/affine_params.hpp"

#include <cmath>

#include "voxalign/core/error.hpp"

namespace voxalign {
namespace {

/// A dual number v + d e (e^2 = 0): forward-mode derivative along one parameter.
struct Dual {
  double v = 0, d = 0;
};
Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
Dual operator-(Dual a, Dual b) { return {a.v - b.v, a.d - b.d}; }
Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
Dual sin(Dual a) { return {std::sin(a.v), a.d * std::cos(a.v)}; }
Dual cos(Dual a) { return {std::cos(a.v), -a.d * std::sin(a.v)}; }
Dual sqrt(Dual a) {
  const double s = std::sqrt(a.v);
  return {s, s > 0 ? a.d / (2 * s) : 0.0};
}
double sin(double a) { return std::sin(a); }
double cos(double a) { return std::cos(a); }
double sqrt(double a) { return std::sqrt(a); }

template <class S> struct M3 {
  S a[3][3];
  static M3 identity() {
    M3 m;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) m.a[i][j] = S{i == j ? 1.0 : 0.0};
    return m;
  }
};
template <class S> M3<S> operator*(const M3<S>& x, const M3<S>& y) {
  M3<S> r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      S s{0.0};
      for (int k = 0; k < 3; ++k) s = s + x.a[i][k] * y.a[k][j];
      r.a[i][j] = s;
    }
  return r;
}

int group_size(const std::string& g, int nd) {
  if (g == "translation" || g == "zoom") return nd;
  if (g == "rotation" || g == "shear") return nd == 3 ? 3 : 1;
  if (g == "scale") return 1;
  if (g == "versor") {
    VX_CHECK(nd == 3, InvalidArgument, "affine model: 'versor' rotations are 3D only (use 'rotation' in 2D)");
    return 3;
  }
  if (g == "matrix") return nd * nd;
  throw InvalidArgument("affine model: unknown parameter group '" + g +
                        "' (use translation, rotation, versor, scale, zoom, shear, matrix)");
}

/// p(x) = c + t + L (x - c) as a 4x4 over scalar S.
template <class S> void build(const AffineModel& m, const std::vector<S>& th, S out[3][4]) {
  const int nd = m.ndim;
  S t[3] = {S{0.0}, S{0.0}, S{0.0}};
  M3<S> R = M3<S>::identity(), Z = R, Sh = R, A = R;
  bool matrix = false;
  size_t k = 0;
  for (const auto& g : m.groups) {
    if (g == "translation") {
      for (int d = 0; d < nd; ++d) t[d] = th[k++];
    } else if (g == "rotation") {
      if (nd == 2) {
        const S a = th[k++];
        R.a[0][0] = cos(a), R.a[0][1] = S{0.0} - sin(a), R.a[1][0] = sin(a), R.a[1][1] = cos(a);
      } else {
        const S x = th[k], y = th[k + 1], z = th[k + 2];
        k += 3;
        M3<S> rx = M3<S>::identity(), ry = rx, rz = rx;
        rx.a[1][1] = cos(x), rx.a[1][2] = S{0.0} - sin(x), rx.a[2][1] = sin(x), rx.a[2][2] = cos(x);
        ry.a[0][0] = cos(y), ry.a[0][2] = sin(y), ry.a[2][0] = S{0.0} - sin(y), ry.a[2][2] = cos(y);
        rz.a[0][0] = cos(z), rz.a[0][1] = S{0.0} - sin(z), rz.a[1][0] = sin(z), rz.a[1][1] = cos(z);
        R = rz * (ry * rx);
      }
    } else if (g == "versor") {
      const S x = th[k], y = th[k + 1], z = th[k + 2];
      k += 3;
      const S w = sqrt(S{1.0} - (x * x + y * y + z * z));
      const S two{2.0};
      R.a[0][0] = S{1.0} - two * (y * y + z * z), R.a[0][1] = two * (x * y - z * w), R.a[0][2] = two * (x * z + y * w);
      R.a[1][0] = two * (x * y + z * w), R.a[1][1] = S{1.0} - two * (x * x + z * z), R.a[1][2] = two * (y * z - x * w);
      R.a[2][0] = two * (x * z - y * w), R.a[2][1] = two * (y * z + x * w), R.a[2][2] = S{1.0} - two * (x * x + y * y);
    } else if (g == "zoom") {
      for (int d = 0; d < nd; ++d) Z.a[d][d] = S{1.0} + th[k++];
    } else if (g == "scale") {
      const S z = S{1.0} + th[k++];
      for (int d = 0; d < nd; ++d) Z.a[d][d] = z;
    } else if (g == "shear") {
      if (nd == 2) {
        Sh.a[0][1] = th[k++];
      } else {
        Sh.a[0][1] = th[k], Sh.a[0][2] = th[k + 1], Sh.a[1][2] = th[k + 2];
        k += 3;
      }
    } else if (g == "matrix") {
      matrix = true;
      for (int i = 0; i < nd; ++i)
        for (int j = 0; j < nd; ++j) A.a[i][j] = A.a[i][j] + th[k++];
    }
  }
  const M3<S> L = matrix ? A : R * (Z * Sh);
  for (int i = 0; i < 3; ++i) {
    S off = S{m.centre[i]} + t[i];
    for (int j = 0; j < 3; ++j) {
      out[i][j] = L.a[i][j];
      off = off - L.a[i][j] * S{m.centre[j]};
    }
    out[i][3] = off;
  }
}

} // namespace

int affine_group_size(const std::string& group, int ndim) { return group_size(group, ndim); }

int AffineModel::size() const {
  VX_CHECK(ndim == 2 || ndim == 3, InvalidArgument, "affine model: 2D or 3D, not ", ndim, "D");
  int n = 0;
  bool has_matrix = false, has_linear = false, has_rot = false;
  for (const auto& g : groups) {
    n += group_size(g, ndim);
    has_matrix |= g == "matrix";
    has_linear |= g == "rotation" || g == "versor" || g == "scale" || g == "zoom" || g == "shear";
    if (g == "rotation" || g == "versor") {
      VX_CHECK(!has_rot, InvalidArgument, "affine model: one rotation group only");
      has_rot = true;
    }
  }
  bool has_zoom = false, has_scale = false;
  for (const auto& g : groups) has_zoom |= g == "zoom", has_scale |= g == "scale";
  VX_CHECK(!(has_zoom && has_scale), InvalidArgument, "affine model: 'scale' (isotropic) and 'zoom' (per axis) exclude each other");
  VX_CHECK(!(has_matrix && has_linear), InvalidArgument,
           "affine model: 'matrix' already holds rotation, zoom and shear; do not combine them");
  for (size_t i = 0; i < groups.size(); ++i)
    for (size_t j = i + 1; j < groups.size(); ++j)
      VX_CHECK(groups[i] != groups[j], InvalidArgument, "affine model: group '", groups[i], "' given twice");
  return n;
}

std::vector<std::string> AffineModel::names() const {
  const char* ax[3] = {"x", "y", "z"};
  std::vector<std::string> out;
  for (const auto& g : groups) {
    const int n = group_size(g, ndim);
    if (g == "shear" && ndim == 3) {
      for (const char* s : {"xy", "xz", "yz"}) out.push_back("shear_" + std::string(s));
    } else if (g == "matrix") {
      for (int i = 0; i < ndim; ++i)
        for (int j = 0; j < ndim; ++j) out.push_back("matrix_" + std::to_string(i) + std::to_string(j));
    } else if (n == 1) {
      out.push_back(g);
    } else {
      for (int d = 0; d < n; ++d) out.push_back(g + "_" + ax[d]);
    }
  }
  return out;
}

Mat4 affine_model_matrix(const AffineModel& m, const std::vector<double>& theta) {
  VX_CHECK(int(theta.size()) == m.size(), InvalidArgument, "affine model: ", m.size(), " parameters expected, got ",
           theta.size());
  double a[3][4];
  build<double>(m, theta, a);
  Mat4 M = Mat4::Identity();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) M(i, j) = a[i][j];
  if (m.ndim == 2) M.row(2) << 0, 0, 1, 0; // the third axis is left alone in 2D
  return M;
}

std::vector<Mat4> affine_model_jacobian(const AffineModel& m, const std::vector<double>& theta) {
  const int n = m.size();
  VX_CHECK(int(theta.size()) == n, InvalidArgument, "affine model: ", n, " parameters expected, got ", theta.size());
  std::vector<Mat4> J;
  for (int p = 0; p < n; ++p) {
    std::vector<Dual> th(static_cast<size_t>(n));
    for (int q = 0; q < n; ++q) th[static_cast<size_t>(q)] = Dual{theta[static_cast<size_t>(q)], q == p ? 1.0 : 0.0};
    Dual a[3][4];
    build<Dual>(m, th, a);
    Mat4 D = Mat4::Zero();
    for (int i = 0; i < m.ndim; ++i)
      for (int j = 0; j < 4; ++j) D(i, j) = a[i][j].d;
    J.push_back(D);
  }
  return J;
}

} // namespace voxalign
