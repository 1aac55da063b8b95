// The deterministic scatter (transpose of spline evaluation at points) under the adjoint warps.
//
// Scatter without atomics, by one of two schedules chosen from the data alone (scatter_grid):
// output slabs (displacement fields of bounded size, modes that do not wrap: slabs of output planes
// wider than twice the taps' reach, even slabs in parallel, then odd ones) or coefficient slabs
// (the grid cut into slabs of kSlab planes along its last interpolated axis; the output listed as
// runs of consecutive voxels of a row touching the same slabs, per block of rows in output order;
// each slab filled by one task from its runs, writing only its own planes). Either way every
// coefficient receives its contributions in a fixed order, whatever the number of threads.
#include "internal.hpp"

namespace voxalign {
using namespace warp_detail;
namespace {

constexpr int64_t kSlab = 16;     // coefficient planes per scatter slab
constexpr int64_t kTileRows = 16; // output rows per tile of the adjoint's output-slab schedule

/// Add v * weights of the stencil into c, only for taps whose index along axis D-1 is in [lo, hi).
template <int K, int D, class T, bool GC>
void scatter_taps(T* c, const detail::Stencil<K, D, T>& s, int64_t slab_stride, T v, int64_t lo, int64_t hi) {
  constexpr int W = kernel_taps(K);
  auto in_slab = [&](int64_t off) {
    const int64_t z = off / slab_stride;
    return z >= lo && z < hi;
  };
  if constexpr (D == 1) {
    for (int i = 0; i < W; ++i)
      if (!(GC && s.gc_out[0][i]) && in_slab(s.off[0][i])) c[s.off[0][i]] += v * s.w[0][i];
  } else if constexpr (D == 2) {
    for (int j = 0; j < W; ++j) {
      if ((GC && s.gc_out[1][j]) || !in_slab(s.off[1][j])) continue;
      const T vj = v * s.w[1][j];
      T* row = c + s.off[1][j];
      for (int i = 0; i < W; ++i)
        if (!(GC && s.gc_out[0][i])) row[s.off[0][i]] += vj * s.w[0][i];
    }
  } else {
    for (int k = 0; k < W; ++k) {
      if ((GC && s.gc_out[2][k]) || !in_slab(s.off[2][k])) continue;
      const T vk = v * s.w[2][k];
      for (int j = 0; j < W; ++j) {
        if (GC && s.gc_out[1][j]) continue;
        const T vj = vk * s.w[1][j];
        T* row = c + s.off[2][k] + s.off[1][j];
        for (int i = 0; i < W; ++i)
          if (!(GC && s.gc_out[0][i])) row[s.off[0][i]] += vj * s.w[0][i];
      }
    }
  }
}

/// scatter_taps for a stencil whose axis-0 taps are contiguous and unfolded (Stencil::contiguous0,
/// no grid-constant taps outside): each row of axis-0 taps is one short-vector update (the extra
/// lanes, within the same row, add zero).
template <int K, int D, class T>
void scatter_rows(T* c, const detail::Stencil<K, D, T>& s, int64_t slab_stride, T v, int64_t lo, int64_t hi) {
  constexpr int W = kernel_taps(K), V = detail::simd_lanes(K);
  using vec = typename detail::SimdVec<T, V>::type;
  vec w0 = {};
  for (int i = 0; i < W; ++i) w0[i] = s.w[0][i];
  auto add_row = [&](T* row, T a) { // row[0..V) += a * w0
    vec r;
    __builtin_memcpy(&r, row, sizeof r);
    r += a * w0;
    __builtin_memcpy(row, &r, sizeof r);
  };
  auto in_slab = [&](int64_t off) {
    const int64_t z = off / slab_stride;
    return z >= lo && z < hi;
  };
  T* c0 = c + s.off[0][0];
  if constexpr (D == 2) {
    for (int j = 0; j < W; ++j)
      if (in_slab(s.off[1][j])) add_row(c0 + s.off[1][j], v * s.w[1][j]);
  } else {
    for (int k = 0; k < W; ++k) {
      if (!in_slab(s.off[2][k])) continue;
      const T vk = v * s.w[2][k];
      for (int j = 0; j < W; ++j) add_row(c0 + s.off[2][k] + s.off[1][j], vk * s.w[1][j]);
    }
  }
}

/// Whether point x's taps all lie inside the coefficient grid with no boundary mapping or folding
/// (axis 0 reaching the SIMD lanes); start[d] receives the first tap per axis.
template <int K, int D> bool interior_start(const int64_t* cd, int pad, const double* x, int64_t* start) {
  for (int d = 0; d < D; ++d)
    if (!detail::interior_tap<K>(x[d] + pad, cd[d], detail::interior_reach<K>(d), start[d])) return false;
  return true;
}

/// Scatter of an interior point (see interior_start): weight (axis d, tap t) at w[d * wd + t * wq];
/// rows of taps along axis 0 are updated as short vectors (extra lanes weigh 0), only for taps
/// whose index along the slab axis D-1 is in [lo, hi).
template <int K, int D, class T>
void scatter_interior(T* c, const int64_t* cs, const int64_t* start, const T* w, int wd, int wq, T v, int64_t lo,
                      int64_t hi) {
  constexpr int W = kernel_taps(K);
  constexpr int V = detail::simd_lanes(K);
  using vec = typename detail::SimdVec<T, V>::type;
  vec w0 = {};
  for (int i = 0; i < W; ++i) w0[i] = w[i * wq];
  auto add_row = [&](T* row, T a) { // row[0..V) += a * w0
    vec r;
    __builtin_memcpy(&r, row, sizeof r);
    r += a * w0;
    __builtin_memcpy(row, &r, sizeof r);
  };
  if constexpr (D == 1) { // the slab axis is axis 0: scalar, so that no lane touches another slab
    for (int i = 0; i < W; ++i)
      if (start[0] + i >= lo && start[0] + i < hi) c[start[0] + i] += v * w[i * wq];
  } else if constexpr (D == 2) {
    for (int j = 0; j < W; ++j) {
      if (start[1] + j < lo || start[1] + j >= hi) continue;
      add_row(c + start[0] + (start[1] + j) * cs[1], v * w[wd + j * wq]);
    }
  } else {
    for (int k = 0; k < W; ++k) {
      if (start[2] + k < lo || start[2] + k >= hi) continue;
      const T vk = v * w[2 * wd + k * wq];
      T* plane = c + start[0] + (start[2] + k) * cs[2] + start[1] * cs[1];
      for (int j = 0; j < W; ++j) add_row(plane + j * cs[1], vk * w[wd + j * wq]);
    }
  }
}

#ifdef VX_HAVE_AVX2_TAPS
/// The rows of axis-0 taps of point p of a batch of 8 for a 4-tap kernel in 2D/3D float (weights
/// w[axis][tap][p]): add(row(j, k), v * w1[j] * w2[k]) for each row whose index along the slab
/// axis D-1, plane(tap), is in [lo, hi).
template <int D, class Plane, class Row, class Add>
inline VX_FORCEINLINE void scatter_rows4(const float (*w)[4][8], int p, float v, Plane plane, Row row, int64_t lo,
                                         int64_t hi, Add add) {
  if constexpr (D == 2) {
    for (int j = 0; j < 4; ++j)
      if (plane(j) >= lo && plane(j) < hi) add(row(j, 0), v * w[1][j][p]);
  } else {
    for (int k = 0; k < 4; ++k) {
      if (plane(k) < lo || plane(k) >= hi) continue;
      const float vk = v * w[2][k][p];
      for (int j = 0; j < 4; ++j) add(row(j, k), vk * w[1][j][p]);
    }
  }
}

/// Scatter of point p of a group's stencils (detail::stencils4_x8, fix[p] != 1) for a 4-tap kernel
/// in 2D/3D float: c[taps] += v * weights, only for taps whose index along the slab axis D-1 is in
/// [lo, hi). Rows at their folded offsets; along axis 0 one 4-float update (fix 0) or the 4 folded
/// taps one by one (fix 2, in tap order: folded taps may coincide).
template <int D>
inline void scatter_stencil4(float* c, const detail::Stencils4x8& s, int p, float v, int64_t lo, int64_t hi) {
  const __m128 wx = _mm_setr_ps(s.w[0][0][p], s.w[0][1][p], s.w[0][2][p], s.w[0][3][p]);
  const bool folded = s.fix[p] == 2;
  auto add_row = [&](float* row, float a) {
    if (!folded) {
      _mm_storeu_ps(row + s.o0[p], _mm_fmadd_ps(_mm_set1_ps(a), wx, _mm_loadu_ps(row + s.o0[p])));
      return;
    }
    for (int l = 0; l < 4; ++l) row[s.x0[l][p]] += a * s.w[0][l][p];
  };
  scatter_rows4<D>(
      s.w, p, v, [&](int t) { return s.idx[t][p]; },
      [&](int j, int k) { return c + s.o[1][j][p] + (D == 3 ? s.o[2][k][p] : 0); }, lo, hi, add_row);
}

constexpr int kBlockGroups = 8; // groups of 8 points per block of scatter_block4_x8

/// Scatter of a block of ng <= kBlockGroups groups of 8 interior points (group g: weights
/// w[g][axis][tap][point] and first-tap offsets o[g] from interior_weights_x8, values v[g]; points
/// with v = 0 are skipped) for a 4-tap kernel in 2D/3D float: c[o + taps] += v * weights, only for
/// taps whose index along the slab axis D-1 (first tap: last[g][p]) is in [lo, hi). Each row of 4
/// axis-0 taps is one 4-float update. The points go in the order (point p of every group, then
/// point p + 1 of every group): neighbouring points of a row, whose rows overlap, are a whole
/// block apart, so that no update waits for the store of the one before it to reach the cache.
template <int D>
inline void scatter_block4_x8(float* c, int64_t s1, int64_t s2, const int64_t (*o)[8], const int64_t (*last)[8],
                              const float (*w)[D][4][8], const float (*v)[8], int ng, int64_t lo, int64_t hi) {
  // axis-0 weights from [tap][point] to one 4-vector per point: point p of group g at w0[g][p]
  alignas(32) float w0[kBlockGroups][8][4];
  for (int g = 0; g < ng; ++g) {
    __m256 q[4];
    detail::taps_by_point4_x8(w[g][0], q);
    for (int r = 0; r < 4; ++r) {
      _mm_store_ps(w0[g][r], _mm256_castps256_ps128(q[r]));
      _mm_store_ps(w0[g][r + 4], _mm256_extractf128_ps(q[r], 1));
    }
  }
  for (int p = 0; p < 8; ++p)
    for (int g = 0; g < ng; ++g) {
      const float vp = v[g][p];
      if (vp == 0.0f) continue; // contributes nothing
      const __m128 wx = _mm_load_ps(w0[g][p]);
      float* base = c + o[g][p];
      const int64_t first = last[g][p];
      scatter_rows4<D>(
          w[g], p, vp, [&](int t) { return first + t; }, [&](int j, int k) { return base + j * s1 + k * s2; }, lo, hi,
          [&](float* row, float a) { _mm_storeu_ps(row, _mm_fmadd_ps(_mm_set1_ps(a), wx, _mm_loadu_ps(row))); });
    }
}
#endif

/// Schedule 1 of scatter_points (output slabs): slabs of S output planes along the slab axis.
/// Slab s scatters only into its window of coefficient planes [s S + pad - S/2, (s + 2) S + pad -
/// S/2) (the first from 0, the last to the end): the windows of one phase (every other slab) do
/// not overlap. A point whose displacement along the slab axis is at most `limit` = S/2 - taps has
/// all its taps inside its slab's window: the taps lie within taps of the point, and the modes'
/// folding only moves taps towards the nearest end of the grid, which only points of the first or
/// last slab reach. S comes from a sample of the field (every kSampleRows-th row): room for 1.5
/// times its largest |u| plus one voxel; scatter_grid checks every point against `limit` and, if
/// one is beyond it, starts again from the plan of the whole field. size 0 where the schedule does not
/// apply (no field, 1D, wrapping modes, a sample with non-finite or huge values, displacements too
/// large for 4 slabs). The slab count is a multiple of 4, so that the two phases split evenly over
/// 2 or 4 threads.
struct SlabPlan {
  int64_t size = 0;
  double limit = 0.0;
};
constexpr int64_t kSampleRows = 13;

/// max |u[i * st]| over i < n, or NaN if any u is NaN.
template <class T> double max_abs(const T* u, int64_t n, int64_t st) {
  int64_t i = 0;
  T m = 0;
  bool nan = false;
#ifdef VX_HAVE_AVX2_TAPS
  if constexpr (std::is_same_v<T, float>) {
    if (st == 1) {
      const __m256 sign = _mm256_set1_ps(-0.0f);
      __m256 vm = _mm256_setzero_ps(), vn = _mm256_setzero_ps();
      for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_andnot_ps(sign, _mm256_loadu_ps(u + i));
        vm = _mm256_max_ps(vm, v);
        vn = _mm256_or_ps(vn, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      }
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, vm);
      for (float v : lanes) m = std::max(m, v);
      nan = _mm256_movemask_ps(vn) != 0;
    }
  }
#endif
  for (; i < n; ++i) {
    const T v = std::abs(u[i * st]);
    m = std::max(m, v);
    nan |= v != v;
  }
  return nan ? std::numeric_limits<double>::quiet_NaN() : double(m);
}

/// The plan from every `stride`-th row of the field (1: all of them, and then every point is within the limit).
template <class T>
SlabPlan output_slab_plan(int nd, int order, Mode mode, ImageView<const T> y, ImageView<const T> field,
                          int64_t stride) {
  const int a = nd - 1;
  if (!field.data || nd < 2 || mode == Mode::Wrap || mode == Mode::GridWrap) return {};
  const int64_t rows = y.dims[1] * y.dims[2];
  double m = 0.0;
  for (int64_t r = 0; r < rows; r += stride) {
    const double mr = max_abs(&field(0, r % y.dims[1], r / y.dims[1], a), y.dims[0], field.strides[0]);
    if (!(mr <= 1e6)) return {}; // NaN, infinite or huge
    m = std::max(m, mr);
  }
  const int taps = kernel_taps(order);
  const int64_t reach = int64_t(std::ceil(1.5 * m + 1.0)) + taps; // S/2 >= reach: limit >= 1.5 m + 1
  const int64_t n_out = y.dims[a];
  int64_t nsl = n_out / (2 * reach + 1);
  nsl -= nsl % 4;
  if (nsl < 4) return {};
  const int64_t S = (n_out + nsl - 1) / nsl;
  return {S, double(S / 2 - taps)};
}

} // namespace

template <class T>
void scatter_points(Coefficients<T>& coef, ImageView<const T> y, ImageView<const T> field, const double* M) {
  scatter_grid(coef.image.data(), coef.image.geometry().dims.data(), coef.ndim, coef.order, coef.mode, coef.pad, y,
               field, M);
}

template <class T>
void scatter_grid(T* c, const int64_t* gdims, int nd, int order, Mode mode, int pad, ImageView<const T> y,
                  ImageView<const T> field, const double* M) {
  const int64_t cd[3] = {gdims[0], gdims[1], gdims[2]};
  const int64_t cs[3] = {1, cd[0], cd[0] * cd[1]};
  if (field.data) check_output_grid(field, y.dims, nd, "warp adjoint");
  const int64_t nx = y.dims[0], ny = y.dims[1], nz = y.dims[2], rows = ny * nz;
  VX_CHECK(nx < (int64_t(1) << 31), InvalidArgument, "warp adjoint: grids are limited to 2^31 voxels along axis 0");
  const int a = nd - 1; // slab axis
  const int64_t na = cd[a], nslabs = (na + kSlab - 1) / kSlab, nblocks = (rows + kRowGrain - 1) / kRowGrain;
  const PointOf<T> point{field, M, nd};
  detail::dispatch_kernel(order, nd, [&]<int K, int D>() {
    constexpr int W = kernel_taps(K);
    const int64_t one = 1;
    // Slab-axis coordinate of output voxel (i, j, k) (as PointOf computes it).
    auto coord_a = [&](int64_t i, int64_t j, int64_t k) {
      const int64_t idx[3] = {i, j, k};
      if (field.data) return double(idx[a]) + double(field.data[field.offset(i, j, k) + a * field.strides[3]]);
      return affine_point(M + 4 * a, i, j, k);
    };
    // Distinct slabs touched by the taps of a point whose slab-axis coordinate is xa: returns the
    // count n, the slabs in out[0..n); n = -1 with out = {first, last} when they are a range.
    auto slabs_of = [&](double xa, int64_t* out) {
      int64_t st;
      if (detail::interior_tap<K>(xa + pad, na, W, st)) { // fast path: the taps lie inside the grid
        out[0] = st / kSlab, out[1] = (st + W - 1) / kSlab;
        return -1;
      }
      detail::Stencil<K, 1, T> s;
      if (!detail::make_stencil<K, 1, T, false>(&xa, &cd[a], &one, mode, pad, s)) return 0;
      int n = 0;
      for (int l = 0; l < W; ++l) {
        if (mode == Mode::GridConstant && s.gc_out[0][l]) continue;
        const int64_t sl = s.off[0][l] / kSlab;
        bool seen = false;
        for (int e = 0; e < n; ++e) seen |= out[e] == sl;
        if (!seen) out[n++] = sl;
      }
      return n;
    };
    // Scatter of the voxels (i_begin..i_end-1, j, k) of one output row, only into the coefficient
    // planes [lo, hi) along the slab axis. Interior points N at a time (their weights computed
    // together, SIMD over points), the others one by one through the stencil.
    constexpr int N = sizeof(T) == 4 ? 8 : 4;
#ifdef VX_HAVE_AVX2_TAPS
    double lo8[3] = {0, 0, 0}, hi8[3] = {0, 0, 0};
    detail::interior_bounds_x8<K, D>(cd, lo8, hi8);
    const bool x8_ok = detail::strides_fit_int32(cs);
    const bool vec_field = field.data && field.strides[0] == 1;
#endif
    // Returns whether every point's displacement along the slab axis (its coordinate minus its
    // own index there) is at most `limit` (false for NaN); schedule 2 ignores it.
    auto scatter_row = [&](int64_t j, int64_t k, int64_t i_begin, int64_t i_end, int64_t lo, int64_t hi,
                           double limit) {
      const double q_own = double(D == 3 ? k : j);
      bool within = true;
      double xs[N][3];
      int64_t starts[N][3];
      T vs[N];
      T wb[3][W][N];
      detail::Stencil<K, D, T> st;
      // one point through the general path
      auto scatter_one = [&](const double* x, T v) {
        int64_t st1[3];
        if (interior_start<K, D>(cd, pad, x, st1)) {
          T w1[3][W];
          for (int d = 0; d < D; ++d) kernel_weights<K, T>(x[d] + pad, w1[d], nullptr);
          scatter_interior<K, D, T>(c, cs, st1, &w1[0][0], W, 1, v, lo, hi);
          return;
        }
        if (!detail::make_stencil<K, D, T, false>(x, cd, cs, mode, pad, st)) return;
        if constexpr (D >= 2)
          if (st.contiguous0 && !st.any_gc_out) return scatter_rows<K, D, T>(c, st, cs[a], v, lo, hi);
        if (st.any_gc_out) scatter_taps<K, D, T, true>(c, st, cs[a], v, lo, hi);
        else scatter_taps<K, D, T, false>(c, st, cs[a], v, lo, hi);
      };
#ifdef VX_HAVE_AVX2_TAPS
      if constexpr (detail::x8_kernel<T, K, D>) {
        if (x8_ok) {
          // blocks of up to kBlockGroups groups of 8 voxels: the interior points of each group get
          // their weights SIMD over the group and are scattered with the block; the others at
          // once, through the group's stencils
          for (int64_t b0 = i_begin; b0 < i_end; b0 += 8 * kBlockGroups) {
            alignas(32) float w[kBlockGroups][D][4][8];
            alignas(32) int64_t o[kBlockGroups][8], last[kBlockGroups][8];
            alignas(32) float v8[kBlockGroups][8];
            int ng = 0;
            for (int64_t i0 = b0; i0 < std::min(i_end, b0 + 8 * kBlockGroups); i0 += 8) {
              const int m = int(std::min<int64_t>(8, i_end - i0));
              alignas(32) double xv[3][8];
              coords_x8<D>(point, vec_field, i0, m, j, k, xv);
              __m256d X[D][2];
              const __m256d pd = _mm256_set1_pd(double(pad));
              for (int d = 0; d < D; ++d) {
                X[d][0] = _mm256_add_pd(_mm256_loadu_pd(xv[d]), pd);
                X[d][1] = _mm256_add_pd(_mm256_loadu_pd(xv[d] + 4), pd);
              }
              {
                const __m256d q = _mm256_set1_pd(q_own), lim = _mm256_set1_pd(limit);
                const __m256d abs = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFF));
                const __m256d d0 = _mm256_and_pd(_mm256_sub_pd(_mm256_loadu_pd(xv[D - 1]), q), abs);
                const __m256d d1 = _mm256_and_pd(_mm256_sub_pd(_mm256_loadu_pd(xv[D - 1] + 4), q), abs);
                within &= _mm256_movemask_pd(_mm256_and_pd(_mm256_cmp_pd(d0, lim, _CMP_LE_OQ),
                                                           _mm256_cmp_pd(d1, lim, _CMP_LE_OQ))) == 0xF;
              }
              float* vg = v8[ng];
              if (m == 8 && y.strides[0] == 1) _mm256_store_ps(vg, _mm256_loadu_ps(&y(i0, j, k)));
              else
                for (int p = 0; p < 8; ++p) vg[p] = p < m ? y(i0 + p, j, k) : 0.0f;
              const unsigned in = detail::interior_mask_x8<D>(X, lo8, hi8);
              if (in != 0xFF) {
                // lanes that are not interior: now, and weigh 0 below; through the group's
                // stencils (points outside a constant grid contribute nothing), or scatter_one
                // where those do not apply (grid-constant, short axes)
                detail::Stencils4x8 gs;
                const bool rows = detail::stencils4_x8<K, D, false>(cd, cs, xv, mode, pad, gs);
                for (int p = 0; p < 8; ++p) {
                  if (in >> p & 1) continue;
                  if (vg[p] != 0.0f) {
                    if (rows) {
                      if (gs.fix[p] != 1) scatter_stencil4<D>(c, gs, p, vg[p], lo, hi);
                    } else {
                      double x[3] = {0, 0, 0};
                      for (int d = 0; d < D; ++d) x[d] = xv[d][p];
                      scatter_one(x, vg[p]);
                    }
                  }
                  vg[p] = 0.0f;
                }
                if (in == 0) continue;
              }
              detail::interior_weights_x8<K, D, false>(cs, X, w[ng], nullptr, o[ng], last[ng]);
              ++ng;
            }
            scatter_block4_x8<D>(c, cs[1], cs[2], o, last, w, v8, ng, lo, hi);
          }
          return within;
        }
      }
#endif
      for (int64_t i0 = i_begin; i0 < i_end; i0 += N) {
        const int m = int(std::min<int64_t>(N, i_end - i0));
        bool all_in = m == N;
        for (int p = 0; p < m; ++p) {
          point(i0 + p, j, k, xs[p]);
          within &= std::abs(xs[p][D - 1] - q_own) <= limit;
          vs[p] = y(i0 + p, j, k);
          if (all_in) all_in = interior_start<K, D>(cd, pad, xs[p], starts[p]);
        }
        if (all_in) {
          for (int d = 0; d < D; ++d) {
            double cc[N];
            int64_t st0[N];
            for (int p = 0; p < N; ++p) cc[p] = xs[p][d] + pad;
            kernel_weights_batch<K, T, N>(cc, wb[d], st0);
          }
          for (int p = 0; p < N; ++p)
            if (vs[p] != T(0)) scatter_interior<K, D, T>(c, cs, starts[p], &wb[0][0][p], W * N, N, vs[p], lo, hi);
          continue;
        }
        for (int p = 0; p < m; ++p)
          if (vs[p] != T(0)) scatter_one(xs[p], vs[p]);
      }
      return within;
    };
    // Schedule 1 (displacement fields that move points by at most a fraction of the grid, modes
    // without wrapping; output_slab_plan): the output rows are cut into slabs of S planes along
    // the slab axis, each scattering only into its window of coefficient planes; the even slabs
    // are scattered in parallel, then the odd ones. The windows of one phase do not overlap, and
    // every coefficient gets its even-slab contributions, then its odd-slab ones, each in a fixed
    // order (scatter_row's): no bucketing, and each point once. Each slab first zeroes the planes
    // no slab before it writes: the even ones their windows (which tile the grid up to the last
    // odd slab's), the odd ones what is left of theirs. A point displaced beyond the plan's limit
    // (whose taps might leave the window) starts the scatter again from the plan of the whole
    // field, or by schedule 2 where that plan does not apply (both overwrite every plane).
    auto output_slabs = [&](const SlabPlan& plan) {
      const int64_t S = plan.size, h = S / 2, n_out = y.dims[a], nsl = (n_out + S - 1) / S;
      auto wlo = [&](int64_t s) { return s == 0 ? int64_t(0) : std::clamp(s * S + pad - h, int64_t(0), na); };
      auto whi = [&](int64_t s) { return s == nsl - 1 ? na : std::clamp((s + 2) * S + pad - h, int64_t(0), na); };
      std::vector<char> within(static_cast<size_t>(nsl), 1);
      bool ok = true;
      for (int phase = 0; phase < 2 && ok; ++phase) {
        parallel_for((nsl - phase + 1) / 2, 1, [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t s = 2 * t + phase, q_end = std::min(n_out, (s + 1) * S), lo = wlo(s), hi = whi(s);
            const int64_t z0 = phase == 0 ? lo : std::max(lo, whi(s - 1));
            const int64_t z1 = phase == 0 || s + 1 == nsl ? hi : std::min(hi, wlo(s + 1));
            if (z0 < z1) std::fill(c + z0 * cs[a], c + z1 * cs[a], T(0));
            bool w = true;
            // output planes q (D = 3) or rows (D = 2) of the slab, in blocks of kTileRows rows
            // along axis 1 so that the coefficients they update stay in cache from plane to plane
            const int64_t nj = D == 3 ? ny : 1;
            for (int64_t j0 = 0; j0 < nj; j0 += kTileRows)
              for (int64_t q = s * S; q < q_end; ++q)
                for (int64_t j = j0; j < std::min(nj, j0 + kTileRows); ++j)
                  w &= scatter_row(D == 3 ? j : q, D == 3 ? q : 0, 0, nx, lo, hi, plan.limit);
            within[static_cast<size_t>(s)] = w;
          }
        });
        for (int64_t s = phase; s < nsl; s += 2) ok &= within[static_cast<size_t>(s)] != 0;
      }
      return ok;
    };
    if (const SlabPlan plan = output_slab_plan(nd, order, mode, y, field, kSampleRows); plan.size > 0) {
      if (output_slabs(plan)) return;
      // a point beyond the sample's reach: the plan of the whole field (which every point is within)
      if (const SlabPlan full = output_slab_plan(nd, order, mode, y, field, 1); full.size > 0 && output_slabs(full))
        return;
    }
    // Schedule 2 (any field or affine map): coefficient slabs of kSlab planes, each filled by one
    // task from the points whose taps touch it.
    // Bucketing: per block of rows, the runs of consecutive voxels of a row whose taps touch the
    // same slabs, one entry per (run, slab), in increasing output order.
    struct Run {
      int64_t row;
      int32_t i0, i1;
      int64_t slab;
    };
    std::vector<std::vector<Run>> runs(static_cast<size_t>(nblocks));
    // Coordinates along the slab axis in which a point's taps lie inside the grid (slabs_of's fast path).
    const double a_lo = 0.0, a_hi = double(na - 1);
    const bool contiguous = (!field.data || field.strides[0] == 1) && y.strides[0] == 1;
    parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
      auto& out = runs[static_cast<size_t>(r0 / kRowGrain)];
      int64_t sl[kernel_taps(K) + 1];
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t j = r % ny, k = r / ny;
        int64_t f = 0, l = -1, i0 = 0; // the open run: slabs [f, l] from voxel i0 (none when l < f)
        auto close = [&](int64_t i1) {
          for (int64_t q = f; q <= l; ++q) out.push_back({r, int32_t(i0), int32_t(i1), q});
          f = 0, l = -1;
        };
        auto extend = [&](int64_t i, int64_t f1, int64_t l1) { // voxel i touches slabs [f1, l1]
          if (f1 == f && l1 == l) return;
          close(i);
          f = f1, l = l1, i0 = i;
        };
        const T* yrow = &y(0, j, k);
        const T* urow = field.data ? field.data + field.offset(0, j, k) + a * field.strides[3] : nullptr;
        const double base_a = a == 0 ? 0.0 : a == 1 ? double(j) : double(k);
        auto one = [&](int64_t i) {
          if (yrow[i * y.strides[0]] == T(0)) { // contributes nothing
            close(i);
            return;
          }
          const int n = slabs_of(coord_a(i, j, k), sl);
          if (n == -1) return extend(i, sl[0], sl[1]);
          close(i);
          for (int e = 0; e < n; ++e) out.push_back({r, int32_t(i), int32_t(i + 1), sl[e]});
        };
        // 8 voxels at a time when all are nonzero, inside the grid along the slab axis and touch the
        // same slabs (the common case), else one by one
        auto eight = [&](int64_t i) {
          // the smallest and largest coordinate (plus padding) of the 8; kernel_start is monotonic
          double mn, mx;
          if (!urow) { // affine: the coordinate is monotonic along the row (a sum of rounded terms)
            const double c0 = coord_a(i, j, k) + pad, c1 = coord_a(i + 7, j, k) + pad;
            mn = std::min(c0, c1), mx = std::max(c0, c1);
            for (int p = 0; p < 8; ++p)
              if (yrow[i + p] == T(0)) return false;
          } else {
#ifdef VX_HAVE_AVX2_TAPS
            if constexpr (std::is_same_v<T, float>) {
              const __m256 yv = _mm256_loadu_ps(yrow + i), u = _mm256_loadu_ps(urow + i);
              if (_mm256_movemask_ps(_mm256_cmp_ps(yv, _mm256_setzero_ps(), _CMP_EQ_OQ)) != 0) return false;
              const __m256d b = _mm256_set1_pd(base_a + pad);
              const __m256d c0 = _mm256_add_pd(b, _mm256_cvtps_pd(_mm256_castps256_ps128(u)));
              const __m256d c1 = _mm256_add_pd(b, _mm256_cvtps_pd(_mm256_extractf128_ps(u, 1)));
              const __m256d nan = _mm256_cmp_pd(c0, c1, _CMP_UNORD_Q);
              if (_mm256_movemask_pd(nan) != 0) return false;
              __m256d vmn = _mm256_min_pd(c0, c1), vmx = _mm256_max_pd(c0, c1);
              vmn = _mm256_min_pd(vmn, _mm256_permute2f128_pd(vmn, vmn, 1));
              vmx = _mm256_max_pd(vmx, _mm256_permute2f128_pd(vmx, vmx, 1));
              vmn = _mm256_min_pd(vmn, _mm256_permute_pd(vmn, 5));
              vmx = _mm256_max_pd(vmx, _mm256_permute_pd(vmx, 5));
              mn = _mm256_cvtsd_f64(vmn), mx = _mm256_cvtsd_f64(vmx);
            } else
#endif
            {
              mn = std::numeric_limits<double>::infinity(), mx = -mn;
              for (int p = 0; p < 8; ++p) {
                const double cc = base_a + double(urow[i + p]) + pad;
                if (yrow[i + p] == T(0) || !(cc == cc)) return false;
                mn = std::min(mn, cc), mx = std::max(mx, cc);
              }
            }
          }
          if (!(mn >= a_lo && mx <= a_hi)) return false;
          const int64_t smin = kernel_start(mn, K), smax = kernel_start(mx, K);
          if (smin < 0 || smax + W - 1 >= na || smin / kSlab != smax / kSlab ||
              (smin + W - 1) / kSlab != (smax + W - 1) / kSlab)
            return false;
          extend(i, smin / kSlab, (smin + W - 1) / kSlab);
          return true;
        };
        int64_t i = 0;
        if (contiguous && a > 0)
          for (; i + 8 <= nx; i += 8)
            if (!eight(i))
              for (int p = 0; p < 8; ++p) one(i + p);
        for (; i < nx; ++i) one(i);
        close(nx);
      }
    });
    std::vector<std::vector<Run>> by_slab(static_cast<size_t>(nslabs));
    for (const auto& blk : runs)
      for (const Run& run : blk) by_slab[static_cast<size_t>(run.slab)].push_back(run);
    // Each slab from its runs, blocks in order: a fixed order of additions into every coefficient.
    parallel_for(nslabs, 1, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        const int64_t lo = s * kSlab, hi = std::min(na, lo + kSlab);
        std::fill(c + lo * cs[a], c + hi * cs[a], T(0)); // the slab's planes (contiguous)
        for (const Run& run : by_slab[static_cast<size_t>(s)])
          scatter_row(run.row % ny, run.row / ny, run.i0, run.i1, lo, hi, 0.0);
      }
    });
  });
}

#define VX_INSTANTIATE(T)                                                                                            \
  template void scatter_grid(T*, const int64_t*, int, int, Mode, int, ImageView<const T>, ImageView<const T>,        \
                             const double*);                                                                         \
  template void scatter_points(Coefficients<T>&, ImageView<const T>, ImageView<const T>, const double*);
VX_INSTANTIATE(float)
VX_INSTANTIATE(double)
#undef VX_INSTANTIATE

} // namespace voxalign
