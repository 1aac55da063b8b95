// Operations on displacement fields: inversion by fixed-point iteration, finite-difference gradients,
// and the conversion of a field in mm to voxel displacements of the input grid.
#include "internal.hpp"

namespace voxalign {
using namespace warp_detail;

template <class T>
int invert_displacement(ImageView<const T> field, int nd, int order, int iterations, double tol, ImageView<T> inv) {
  VX_CHECK(field.dims[3] == nd && inv.dims[3] == nd, InvalidArgument, "invert field: ", nd, " components expected");
  for (int d = 0; d < 3; ++d)
    VX_CHECK(inv.dims[d] == field.dims[d], InvalidArgument, "invert field: output grid differs from the field's");
  // One spline per component of u (mode 'nearest': the field is extended by its edge values).
  std::vector<Coefficients<T>> cu;
  for (int d = 0; d < nd; ++d) cu.push_back(spline_coefficients<T>(field.frame(d), nd, order, Mode::Nearest, 0.0));
  const int64_t* dims = field.dims;
  const int64_t rows = dims[1] * dims[2];
  if (rows * dims[0] == 0) return 0;
  for (int64_t k = 0; k < dims[2]; ++k)
    for (int64_t j = 0; j < dims[1]; ++j)
      for (int64_t i = 0; i < dims[0]; ++i)
        for (int d = 0; d < nd; ++d) inv(i, j, k, d) = -field(i, j, k, d);
  const int64_t nblocks = (rows + kRowGrain - 1) / kRowGrain;
  std::vector<double> change(static_cast<size_t>(nblocks));
  int it = 0;
  while (it < iterations) {
    ++it;
    std::fill(change.begin(), change.end(), 0.0);
    // Jacobi step: every voxel from the previous iterate (a copy), so the order does not matter.
    Geometry g;
    g.dims = {dims[0], dims[1], dims[2], int64_t(nd)};
    Image<T> prev(g, no_init);
    for (int64_t k = 0; k < dims[2]; ++k)
      for (int64_t j = 0; j < dims[1]; ++j)
        for (int64_t i = 0; i < dims[0]; ++i)
          for (int d = 0; d < nd; ++d) prev.view()(i, j, k, d) = inv(i, j, k, d);
    const ImageView<const T> pv = prev.view();
    detail::dispatch_kernel(order, nd, [&]<int K, int D>() {
      parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
        double worst = 0.0;
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t j = r % dims[1], k = r / dims[1];
          for (int64_t i = 0; i < dims[0]; ++i) {
            const int64_t idx[3] = {i, j, k};
            double x[3] = {0, 0, 0};
            for (int d = 0; d < D; ++d) x[d] = double(idx[d]) + double(pv(i, j, k, d));
            for (int d = 0; d < D; ++d) {
              const auto cv = cu[static_cast<size_t>(d)].image.view();
              const T v = -detail::evaluate_point<K, D, T, false>(cv.data, cv.dims, cv.strides, x, Mode::Nearest,
                                                                  cu[static_cast<size_t>(d)].pad, T(0), nullptr);
              const double ch = std::abs(double(v) - double(pv(i, j, k, d)));
              worst = ch <= worst ? worst : (ch == ch ? ch : std::numeric_limits<double>::infinity());
              inv(i, j, k, d) = v;
            }
          }
        }
        change[static_cast<size_t>(r0 / kRowGrain)] = worst;
      });
    });
    if (*std::max_element(change.begin(), change.end()) < tol) break;
  }
  return it;
}

template <class T> void finite_difference_gradient(ImageView<const T> f, int nd, ImageView<T> out) {
  const int64_t* n = f.dims;
  parallel_for(n[1] * n[2], kRowGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t j = r % n[1], k = r / n[1];
      for (int64_t i = 0; i < n[0]; ++i) {
        const int64_t idx[3] = {i, j, k};
        for (int d = 0; d < nd; ++d) {
          if (n[d] < 2) {
            out(i, j, k, d) = T(0);
            continue;
          }
          int64_t lo[3] = {i, j, k}, hi[3] = {i, j, k};
          lo[d] = std::max<int64_t>(idx[d] - 1, 0);
          hi[d] = std::min<int64_t>(idx[d] + 1, n[d] - 1);
          out(i, j, k, d) = (f(hi[0], hi[1], hi[2]) - f(lo[0], lo[1], lo[2])) / T(hi[d] - lo[d]);
        }
      }
    }
  });
}

template <class T>
void field_mm_to_voxels(ImageView<const T> u, const Mat4& field_affine, const Mat4& input_affine, ImageView<T> out) {
  VX_CHECK(u.dims[3] == 3 && out.dims[3] == 3, InvalidArgument, "field in mm: 3 components expected, got ", u.dims[3]);
  for (int d = 0; d < 3; ++d) VX_CHECK(out.dims[d] == u.dims[d], InvalidArgument, "field in mm: output grid differs");
  const Mat4 Ainv = input_affine.inverse();
  const Mat4 M = Ainv * field_affine;
  const Eigen::Matrix3d L = Ainv.topLeftCorner<3, 3>();
  parallel_for(u.dims[1] * u.dims[2], kRowGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t j = r % u.dims[1], k = r / u.dims[1];
      for (int64_t i = 0; i < u.dims[0]; ++i) {
        const Eigen::Vector3d x{static_cast<double>(i), static_cast<double>(j), static_cast<double>(k)};
        const Eigen::Vector3d um{double(u(i, j, k, 0)), double(u(i, j, k, 1)), double(u(i, j, k, 2))};
        const Eigen::Vector3d p = M.topLeftCorner<3, 3>() * x + M.topRightCorner<3, 1>() + L * um;
        for (int c = 0; c < 3; ++c) out(i, j, k, c) = T(p[c] - x[c]);
      }
    }
  });
}

const NameTable<FieldUnits>& field_unit_names() {
  static const NameTable<FieldUnits> t{"field unit", {{FieldUnits::Voxel, "voxel"}, {FieldUnits::Mm, "mm"}}};
  return t;
}

#define VX_INSTANTIATE(T)                                                                                            \
  template int invert_displacement(ImageView<const T>, int, int, int, double, ImageView<T>);                         \
  template void finite_difference_gradient(ImageView<const T>, int, ImageView<T>);                                   \
  template void field_mm_to_voxels(ImageView<const T>, const Mat4&, const Mat4&, ImageView<T>);
VX_INSTANTIATE(float)
VX_INSTANTIATE(double)
#undef VX_INSTANTIATE

} // namespace voxalign
