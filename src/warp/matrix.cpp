// The warp as an explicit sparse matrix (CSR): one row per output voxel, its stencil's taps as columns.
#include "internal.hpp"

namespace voxalign {
using namespace warp_detail;

template <class T>
CsrMatrix warp_matrix(const int64_t* out_dims, const int64_t* cd, int nd, int order, Mode mode, int pad,
                      ImageView<const T> field, const double* M) {
  if (field.data) check_output_grid(field, out_dims, nd, "warp matrix");
  const int64_t cs[3] = {1, cd[0], cd[0] * cd[1]};
  const int64_t nx = out_dims[0], ny = out_dims[1], nz = out_dims[2], rows = ny * nz, nrow = nx * rows;
  CsrMatrix m;
  m.rows = nrow;
  m.cols = cd[0] * cd[1] * cd[2];
  m.indptr.assign(static_cast<size_t>(nrow + 1), 0);
  const PointOf<T> point{field, M, nd};
  detail::dispatch_kernel(order, nd, [&]<int K, int D>() {
    constexpr int W = kernel_taps(K);
    // Entries of one output voxel: (column, weight), folded duplicates merged, ascending.
    auto entries = [&](int64_t i, int64_t j, int64_t k, std::vector<std::pair<int64_t, double>>& e) {
      e.clear();
      double x[3] = {0, 0, 0};
      point(i, j, k, x);
      detail::Stencil<K, D, double> st;
      if (!detail::make_stencil<K, D, double, false>(x, cd, cs, mode, pad, st)) return;
      const bool gc = st.any_gc_out;
      for (int kk = 0; kk < (D == 3 ? W : 1); ++kk) {
        if (D == 3 && gc && st.gc_out[D == 3 ? 2 : 0][kk]) continue;
        const double wz = D == 3 ? st.w[D == 3 ? 2 : 0][kk] : 1.0;
        const int64_t oz = D == 3 ? st.off[D == 3 ? 2 : 0][kk] : 0;
        for (int jj = 0; jj < (D >= 2 ? W : 1); ++jj) {
          if (D >= 2 && gc && st.gc_out[D >= 2 ? 1 : 0][jj]) continue;
          const double wy = D >= 2 ? st.w[D >= 2 ? 1 : 0][jj] : 1.0;
          const int64_t oy = D >= 2 ? st.off[D >= 2 ? 1 : 0][jj] : 0;
          for (int ii = 0; ii < W; ++ii) {
            if (gc && st.gc_out[0][ii]) continue;
            e.emplace_back(oz + oy + st.off[0][ii], wz * wy * st.w[0][ii]);
          }
        }
      }
      std::sort(e.begin(), e.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      size_t w = 0;
      for (size_t q = 0; q < e.size(); ++q) {
        if (w > 0 && e[w - 1].first == e[q].first) e[w - 1].second += e[q].second;
        else e[w++] = e[q];
      }
      e.resize(w);
    };
    parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
      std::vector<std::pair<int64_t, double>> e;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t i = 0; i < nx; ++i) {
          entries(i, r % ny, r / ny, e);
          m.indptr[static_cast<size_t>(r * nx + i + 1)] = int64_t(e.size());
        }
    });
    for (int64_t q = 0; q < nrow; ++q) m.indptr[static_cast<size_t>(q + 1)] += m.indptr[static_cast<size_t>(q)];
    m.indices.resize(static_cast<size_t>(m.indptr.back()));
    m.data.resize(m.indices.size());
    parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
      std::vector<std::pair<int64_t, double>> e;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t i = 0; i < nx; ++i) {
          entries(i, r % ny, r / ny, e);
          int64_t p = m.indptr[static_cast<size_t>(r * nx + i)];
          for (const auto& [col, w] : e) m.indices[static_cast<size_t>(p)] = col, m.data[static_cast<size_t>(p++)] = w;
        }
    });
  });
  return m;
}

#define VX_INSTANTIATE(T)                                                                                            \
  template CsrMatrix warp_matrix(const int64_t*, const int64_t*, int, int, Mode, int, ImageView<const T>,            \
                                 const double*);
VX_INSTANTIATE(float)
VX_INSTANTIATE(double)
#undef VX_INSTANTIATE

} // namespace voxalign
