#include <algorithm>
#include <cstdlib>
#include <type_traits>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/image/image.hpp"

namespace voxalign {
namespace {

// Transpose an L x L block: o[q * os + i] = s[i * ss + q] (L = 8 floats or 4 doubles with AVX).
template <class T> constexpr int64_t kBlock = std::is_same_v<T, float> ? 8 : 4;

template <class T> inline void transpose_block(const T* s, int64_t ss, T* o, int64_t os) {
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
    __m256 r[8], t[8], u[8];
    for (int a = 0; a < 8; ++a) r[a] = _mm256_loadu_ps(s + a * ss);
    for (int a = 0; a < 4; ++a) {
      t[2 * a] = _mm256_unpacklo_ps(r[2 * a], r[2 * a + 1]);
      t[2 * a + 1] = _mm256_unpackhi_ps(r[2 * a], r[2 * a + 1]);
    }
    for (int a = 0; a < 2; ++a) {
      u[4 * a + 0] = _mm256_shuffle_ps(t[4 * a], t[4 * a + 2], 0x44);
      u[4 * a + 1] = _mm256_shuffle_ps(t[4 * a], t[4 * a + 2], 0xEE);
      u[4 * a + 2] = _mm256_shuffle_ps(t[4 * a + 1], t[4 * a + 3], 0x44);
      u[4 * a + 3] = _mm256_shuffle_ps(t[4 * a + 1], t[4 * a + 3], 0xEE);
    }
    for (int a = 0; a < 4; ++a) {
      _mm256_storeu_ps(o + a * os, _mm256_permute2f128_ps(u[a], u[a + 4], 0x20));
      _mm256_storeu_ps(o + (a + 4) * os, _mm256_permute2f128_ps(u[a], u[a + 4], 0x31));
    }
    return;
  } else {
    const __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + ss);
    const __m256d r2 = _mm256_loadu_pd(s + 2 * ss), r3 = _mm256_loadu_pd(s + 3 * ss);
    const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(o, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(o + os, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(o + 2 * os, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(o + 3 * os, _mm256_permute2f128_pd(t1, t3, 0x31));
    return;
  }
#endif
  constexpr int64_t L = kBlock<T>;
  for (int64_t q = 0; q < L; ++q)
    for (int64_t i = 0; i < L; ++i) o[q * os + i] = s[i * ss + q];
}

} // namespace

template <class T> void copy_view(ImageView<const T> src, ImageView<T> dst) {
  for (int d = 0; d < 4; ++d)
    VX_CHECK(src.dims[d] == dst.dims[d], InvalidArgument, "copy_view: dims differ on axis ", d);
  const int64_t* n = src.dims;
  auto faster = [&](int d, int e) { return std::llabs(src.strides[d]) < std::llabs(src.strides[e]); };
  // The source axis with the smallest stride (among axes longer than 1): its elements share lines.
  int fastest = 0;
  for (int d = 1; d < 4; ++d)
    if (n[d] > 1 && (n[fastest] == 1 || faster(d, fastest))) fastest = d;
  if (fastest == 0 || n[0] == 1) { // rows along axis 0, one per (j, k, t)
    const int64_t rows = n[1] * n[2] * n[3];
    parallel_for(rows, std::max<int64_t>(1, 16384 / n[0]), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t j = r % n[1], k = (r / n[1]) % n[2], t = r / (n[1] * n[2]);
        const T* s = &src(0, j, k, t);
        T* o = &dst(0, j, k, t);
        const int64_t s0 = src.strides[0], o0 = dst.strides[0];
        if (s0 == 1 && o0 == 1) {
          std::copy(s, s + n[0], o);
        } else {
          for (int64_t i = 0; i < n[0]; ++i) o[i * o0] = s[i * s0];
        }
      }
    });
    return;
  }
  // Tiles of B x B over (axis 0, axis a), one plane (an index of the two other axes) at a time: a
  // plane's source and destination rows are then few and close together (one plane of a 256^3 C-order
  // volume reads 256 runs of 1 KiB); within a tile, L x L register transposes where both sides
  // are unit stride.
  constexpr int64_t B = 32, L = kBlock<T>;
  // The tile's second axis: the fastest one, unless it is short (the 3 components of a C-order
  // field) and another is long enough to fill a tile; the planes then run through the remaining
  // axes fastest first, so that consecutive planes share source lines.
  int a = fastest;
  if (n[a] < 8)
    for (int d = 1; d < 4; ++d)
      if (d != fastest && n[d] >= 8 && (a == fastest || faster(d, a))) a = d;
  int other[2], m = 0;
  for (int d = 1; d < 4; ++d)
    if (d != a) other[m++] = d;
  if (n[other[1]] > 1 && (n[other[0]] == 1 || faster(other[1], other[0]))) std::swap(other[0], other[1]);
  const int64_t planes = n[other[0]] * n[other[1]];
  const int64_t ss0 = src.strides[0], ssa = src.strides[a], ds0 = dst.strides[0], dsa = dst.strides[a];
  const bool blocks = ssa == 1 && ds0 == 1;
  parallel_for(planes, std::max<int64_t>(1, 65536 / (n[0] * n[a])), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      int64_t idx[4] = {0, 0, 0, 0};
      idx[other[0]] = pl % n[other[0]];
      idx[other[1]] = pl / n[other[0]];
      const T* sp = &src(idx[0], idx[1], idx[2], idx[3]);
      T* op = &dst(idx[0], idx[1], idx[2], idx[3]);
      for (int64_t qb = 0; qb < n[a]; qb += B)
        for (int64_t ib = 0; ib < n[0]; ib += B) {
          const int64_t ni = std::min(n[0], ib + B) - ib, nq = std::min(n[a], qb + B) - qb;
          const int64_t bi = blocks ? ni / L * L : 0, bq = blocks ? nq / L * L : 0;
          const T* s = sp + ib * ss0 + qb * ssa;
          T* o = op + ib * ds0 + qb * dsa;
          for (int64_t q = 0; q < bq; q += L)
            for (int64_t i = 0; i < bi; i += L) transpose_block(s + i * ss0 + q, ss0, o + i + q * dsa, dsa);
          for (int64_t q = 0; q < nq; ++q) // the edges of the tile the blocks leave (all of it without them)
            for (int64_t i = q < bq ? bi : 0; i < ni; ++i) o[i * ds0 + q * dsa] = s[i * ss0 + q * ssa];
        }
    }
  });
}

template void copy_view(ImageView<const float>, ImageView<float>);
template void copy_view(ImageView<const double>, ImageView<double>);

} // namespace voxalign
