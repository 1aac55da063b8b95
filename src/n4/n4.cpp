// N4 bias-field correction. The arithmetic follows ITK's N4BiasFieldCorrectionImageFilter,
// BSplineScatteredDataPointSetToImageFilter and BSplineControlPointImageFilter (see docs/n4.md);
// what is new is how it is computed: the data points are the voxels of a grid, so the B-spline
// weights are separable and Lee's scattered-data fit (numerator sum of w^3 r / sum w^2, denominator
// sum of w^2) becomes three one-axis contractions instead of a (order+1)^3 neighbourhood loop per
// voxel, and the field reconstruction three one-axis expansions. Every reduction is done per fixed
// block and combined in block order, so results do not depend on the thread count.
#include "internal.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <string>

#include "voxalign/core/error.hpp"
#include "voxalign/core/memory.hpp"
#include "voxalign/core/parallel.hpp"

namespace voxalign {
using namespace n4_detail;
namespace {

/// ITK's ShrinkImageFilter along one axis of an image of n voxels whose first voxel has index
/// -lower (ANTs' padding; origin 0, identity direction): the original index that output voxel 0
/// copies (output voxel q copies this + q * f). ITK keeps the physical centres of the two grids
/// equal and rounds the first output voxel's position to an input index; the arithmetic is
/// repeated step by step because half-integer cases depend on its rounding.
int64_t shrink_first_index(int64_t n, int64_t lower, int f, double sp) {
  const int64_t start = -lower;
  const auto out_n = std::max<int64_t>(n / f, 1);
  const auto out_start = static_cast<int64_t>(std::ceil(static_cast<double>(start) / f));
  const double cin = static_cast<double>(start) + static_cast<double>(n - 1) / 2.0;
  const double cout = static_cast<double>(out_start) + static_cast<double>(out_n - 1) / 2.0;
  const double origin = 0.0;
  const double out_origin = origin + ((sp * cin + origin) - ((sp * f) * cout + origin));
  const double p = out_origin + (sp * f) * static_cast<double>(out_start);
  const double ci = (1.0 / sp) * (p - origin);
  const auto k = static_cast<int64_t>(std::floor(ci + 0.5));
  const int64_t offset = std::max<int64_t>(0, k - out_start * f);
  return out_start * f + offset;
}

} // namespace

std::vector<int> parse_x_list(const std::string& text, const char* what) {
  std::vector<int> v;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t next = text.find('x', pos);
    const std::string item = text.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(item, &used);
    } catch (...) {
      used = 0;
    }
    VX_CHECK(used == item.size() && !item.empty() && value >= 0, InvalidArgument, what, ": expected numbers joined by 'x' (like 50x50x30x20), got '", text, "'");
    v.push_back(value);
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return v;
}

N4Result n4(ImageView<const float> image, const std::array<double, 3>& spacing, const ImageView<const uint8_t>* mask,
            const ImageView<const float>* weight, const N4Options& o, bool want_bias) {
  VX_CHECK(image.dims[3] == 1, InvalidArgument, "n4: expected a 2D or 3D image, got a 4D one (", image.dims[3], " frames)");
  const int64_t dims[3] = {image.dims[0], image.dims[1], image.dims[2]};
  const bool three_d = dims[2] > 1;
  VX_CHECK(dims[0] > 1 && dims[1] > 1, InvalidArgument, "n4: expected a 2D or 3D image, got ", dims[0], "x", dims[1], "x", dims[2]);
  VX_CHECK(!o.iterations.empty(), InvalidArgument, "n4: at least one fitting level is needed (--iterations)");
  for (int it : o.iterations) VX_CHECK(it >= 0, InvalidArgument, "n4: negative iteration count");
  VX_CHECK(o.spline_order >= 1 && o.spline_order <= 3, InvalidArgument, "n4: spline order must be 1, 2 or 3, got ", o.spline_order);
  VX_CHECK(o.shrink >= 1, InvalidArgument, "n4: shrink factor must be >= 1, got ", o.shrink);
  VX_CHECK(o.bins >= 2, InvalidArgument, "n4: at least 2 histogram bins are needed, got ", o.bins);
  VX_CHECK(o.fwhm > 0 && o.wiener >= 0, InvalidArgument, "n4: FWHM must be > 0 and Wiener noise >= 0");
  VX_CHECK(o.spline_distance >= 0, InvalidArgument, "n4: spline distance must be >= 0");
  for (int d = 0; d < 3; ++d) VX_CHECK(spacing[d] > 0 && std::isfinite(spacing[d]), InvalidArgument, "n4: voxel spacing must be positive");
  const auto same_grid = [&](const auto& v) { return v.dims[0] == dims[0] && v.dims[1] == dims[1] && v.dims[2] == dims[2] && v.dims[3] == 1; };
  if (mask) VX_CHECK(same_grid(*mask), InvalidArgument, "n4: the mask is not on the image's grid (", mask->dims[0], "x", mask->dims[1], "x", mask->dims[2], " vs ", dims[0], "x", dims[1], "x", dims[2], ")");
  if (weight) VX_CHECK(same_grid(*weight), InvalidArgument, "n4: the weight image is not on the image's grid");

  // Non-finite values make no sense for a bias field; refuse them rather than guess.
  for (int64_t k = 0; k < dims[2]; ++k)
    for (int64_t j = 0; j < dims[1]; ++j)
      for (int64_t i = 0; i < dims[0]; ++i)
        VX_CHECK(std::isfinite(image(i, j, k)), InvalidArgument, "n4: the image has a non-finite value (NaN or Inf) at voxel (", i, ", ", j, ", ", k, ")");

  N4Result result;
  Image<uint8_t> otsu;
  if (!mask) {
    otsu = otsu_mask(image, o.otsu_bins);
    result.report.otsu_mask = true;
  }
  const auto in_mask = [&](int64_t i, int64_t j, int64_t k) {
    return mask ? (*mask)(i, j, k) != 0 : otsu.data()[i + dims[0] * (j + dims[1] * k)] != 0;
  };

  // Control points and (ANTs) padding per axis.
  std::array<int, 3> ncp{1, 1, 1};
  std::array<int64_t, 3> pad_lo{0, 0, 0}, padded{dims[0], dims[1], dims[2]};
  const int naxes = three_d ? 3 : 2;
  if (o.spline_distance <= 0)
    VX_CHECK(o.control_points.size() == 1 || static_cast<int>(o.control_points.size()) == naxes, InvalidArgument,
             "n4: give one control-point count or one per axis (", naxes, "), got ", o.control_points.size());
  for (int d = 0; d < naxes; ++d) {
    if (o.spline_distance > 0) {
      // ANTs' arithmetic (single precision) for the mesh and the zero padding that makes the extent
      // a whole number of elements.
      const float domain = static_cast<float>(dims[d] - 1) * static_cast<float>(spacing[d]);
      const float dist = static_cast<float>(o.spline_distance);
      const double nspans = std::ceil(double(domain / dist));
      VX_CHECK(dist > 0 && std::isfinite(nspans) && nspans <= double(dims[d]), InvalidArgument, "n4: spline distance ",
               o.spline_distance, " mm is too small for this image (more mesh elements than voxels along axis ", d, ")");
      VX_CHECK(double(dist) <= 2.0 * double(domain), InvalidArgument, "n4: --spline-distance ", o.spline_distance,
               " mm is more than twice the image's extent along axis ", d, " (", domain,
               " mm): the mesh would be padded far beyond the image");
      const auto spans = static_cast<unsigned>(nspans);
      const auto extra = static_cast<int64_t>((static_cast<float>(spans) * dist - domain) / static_cast<float>(spacing[d]) + 0.5f);
      pad_lo[d] = static_cast<int64_t>(0.5 * static_cast<double>(extra));
      padded[d] = dims[d] + extra;
      ncp[d] = static_cast<int>(std::max(spans, 1u)) + o.spline_order;
    } else {
      VX_CHECK(!o.control_points.empty(), InvalidArgument, "n4: control points not given");
      ncp[d] = o.control_points.size() == 1 ? o.control_points[0] : o.control_points.at(static_cast<size_t>(d));
      VX_CHECK(ncp[d] > o.spline_order, InvalidArgument, "n4: the number of control points (", ncp[d], ") must be greater than the spline order (", o.spline_order, ")");
      VX_CHECK(ncp[d] - o.spline_order <= dims[d], InvalidArgument, "n4: --control-points ", ncp[d], " gives ",
               ncp[d] - o.spline_order, " mesh elements along axis ", d, ", more than its ", dims[d], " voxels");
    }
  }
  {
    // The lattice doubles its mesh elements at every further level: bound the last one before
    // anything is allocated (a lattice larger than this is no bias field, and would not fit in memory).
    const int refinements = std::min<int>(int(o.iterations.size()) - 1, 30);
    double points = 1;
    for (int d = 0; d < naxes; ++d) points *= double(ncp[d] - o.spline_order) * std::ldexp(1.0, refinements) + o.spline_order;
    VX_CHECK(points <= double(1 << 24), InvalidArgument, "n4: ", o.spline_distance > 0 ? "--spline-distance" : "--control-points",
             " with ", o.iterations.size(),
             " fitting levels (--iterations) gives a final B-spline lattice of ", points,
             " control points (at most 16777216): use fewer control points or fewer levels");
  }

  // The fit grid: the (padded) image shrunk as ITK's ShrinkImageFilter does (one voxel per block,
  // the output grid centred on the input grid).
  FitData g;
  g.three_d = three_d;
  std::array<int64_t, 3> sdims{1, 1, 1}, soff{0, 0, 0};
  for (int d = 0; d < naxes; ++d) {
    sdims[d] = std::max<int64_t>(padded[d] / o.shrink, 1);
    VX_CHECK(sdims[d] >= 2, InvalidArgument, "n4: the image (", dims[d], " voxels along axis ", d, ") is too small for shrink factor ", o.shrink);
    soff[d] = shrink_first_index(padded[d], pad_lo[d], o.shrink, spacing[d]);
  }
  g.nx = sdims[0], g.ny = sdims[1], g.nz = sdims[2];
  result.report.fit_dims = sdims;
  // Fit-grid voxel (si, row) -> input voxel, and whether the fit uses it.
  const auto source = [&](int64_t si, int64_t r, int64_t& i, int64_t& j, int64_t& k) {
    i = si * o.shrink + soff[0];
    j = (r % g.ny) * o.shrink + soff[1];
    k = three_d ? (r / g.ny) * o.shrink + soff[2] : 0;
    if (i < 0 || i >= dims[0] || j < 0 || j >= dims[1] || k < 0 || k >= dims[2] || !in_mask(i, j, k)) return false;
    return image(i, j, k) > 0 && (!weight || (*weight)(i, j, k) > 0);
  };
  // Two passes: count runs and voxels per row, then fill the compact arrays.
  const int64_t nrows = g.rows();
  std::vector<int64_t> row_voxels(static_cast<size_t>(nrows) + 1, 0);
  g.row_runs.assign(static_cast<size_t>(nrows) + 1, 0);
  parallel_for(nrows, kRowGrain, [&](int64_t r0, int64_t r1) {
    int64_t i, j, k;
    for (int64_t r = r0; r < r1; ++r) {
      bool prev = false;
      for (int64_t si = 0; si < g.nx; ++si) {
        const bool use = source(si, r, i, j, k);
        row_voxels[static_cast<size_t>(r) + 1] += use;
        g.row_runs[static_cast<size_t>(r) + 1] += use && !prev;
        prev = use;
      }
    }
  });
  for (int64_t r = 0; r < nrows; ++r) {
    row_voxels[static_cast<size_t>(r) + 1] += row_voxels[static_cast<size_t>(r)];
    g.row_runs[static_cast<size_t>(r) + 1] += g.row_runs[static_cast<size_t>(r)];
  }
  const int64_t used = row_voxels.back();
  result.report.fit_voxels = used;
  VX_CHECK(used > 0, InvalidArgument,
           "n4: no voxel to estimate the bias from (the mask is empty, or every voxel in it is <= 0",
           weight ? " or has weight <= 0" : "", o.shrink > 1 ? " at this shrink factor" : "", ")");
  g.runs.resize(static_cast<size_t>(g.row_runs.back()));
  g.run_offset.resize(g.runs.size() + 1);
  g.run_offset.back() = used;
  g.log_in.resize(static_cast<size_t>(used));
  if (weight) g.conf.resize(static_cast<size_t>(used));
  parallel_for(nrows, kRowGrain, [&](int64_t r0, int64_t r1) {
    int64_t i, j, k;
    for (int64_t r = r0; r < r1; ++r) {
      int64_t n = row_voxels[static_cast<size_t>(r)], run = g.row_runs[static_cast<size_t>(r)] - 1;
      bool prev = false;
      for (int64_t si = 0; si < g.nx; ++si) {
        const bool use = source(si, r, i, j, k);
        if (use) {
          if (!prev) {
            ++run;
            g.runs[static_cast<size_t>(run)][0] = static_cast<int32_t>(si);
            g.run_offset[static_cast<size_t>(run)] = n;
          }
          g.runs[static_cast<size_t>(run)][1] = static_cast<int32_t>(si + 1);
          g.log_in[static_cast<size_t>(n)] = static_cast<float>(std::log(static_cast<double>(image(i, j, k))));
          if (weight) g.conf[static_cast<size_t>(n)] = (*weight)(i, j, k);
          ++n;
        }
        prev = use;
      }
    }
  });

  FitOutput f = fit(g, ncp, o, result.report);
  // The fit's arrays and the mask are done with: return their pages (also those the buffer cache would
  // keep: nothing reuses them) before the full-resolution outputs are allocated, so the peak is the
  // input and the outputs.
  g = FitData();
  otsu = Image<uint8_t>();
  release_cached_buffers();

  // The bias at full resolution from the lattice (ANTs: over the padded full-resolution grid,
  // cropped back), and the corrected image.
  Geometry geom;
  geom.ndim = three_d ? 3 : 2;
  geom.dims = {dims[0], dims[1], dims[2], 1};
  result.corrected = Image<float>(geom, no_init);
  if (want_bias) result.bias = Image<float>(geom, no_init);
  const Axis ax = make_axis(dims[0], f.ncp[0], o.spline_order, pad_lo[0], padded[0]);
  const Axis ay = make_axis(dims[1], f.ncp[1], o.spline_order, pad_lo[1], padded[1]);
  const Axis az = three_d ? make_axis(dims[2], f.ncp[2], o.spline_order, pad_lo[2], padded[2]) : trivial_axis();
  const std::vector<double> rowc = collapse_yz(f.lattice, ax, ay, az);
  const int64_t rows = dims[1] * dims[2];
  parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t j = r % dims[1], k = r / dims[1];
      float* out = result.corrected.data() + r * dims[0];
      float* b = want_bias ? result.bias.data() + r * dims[0] : nullptr;
      for (int64_t i = 0; i < dims[0]; ++i) {
        const auto lf = static_cast<float>(expand_x(ax, rowc.data() + r * f.ncp[0], i));
        const float e = std::exp(lf);
        out[i] = image(i, j, k) / e;
        if (b) b[i] = e;
      }
    }
  });
  return result;
}

} // namespace voxalign
