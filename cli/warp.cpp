// voxalign warp: apply a displacement field (or the exact adjoint of that warp) to an image.
#include <cstdio>
#include <string>
#include <vector>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/spline/interpolate.hpp"
#include "voxalign/warp/warp.hpp"

namespace voxalign::cli {
namespace {

struct WarpArgs {
  std::string input, field, output, like;
  WarpOptions warp;
  CommonArgs common;
};

void run(const WarpArgs& a) {
  const WarpOptions& o = a.warp;
  NiftiHeaderInfo in_info, field_info;
  const Image<double> in = read_image<double>(a.input, "input", &in_info);
  Image<double> field = read_image<double>(a.field, "--field", &field_info);
  const Geometry fg = field.geometry();
  VX_CHECK(fg.dims[3] == 3, InvalidArgument, "--field ", a.field, " must be 4D with 3 components (X x Y x Z x 3), got ",
           fg.dims[0], "x", fg.dims[1], "x", fg.dims[2], "x", fg.dims[3]);
  Geometry field_grid = fg;
  field_grid.dims[3] = 1;
  field_grid.ndim = 3;
  // Forward: IN is the warp's input, the output takes the field's grid. Adjoint: IN lies on the
  // field's grid, the output takes the forward input's grid (--like, default the field's grid).
  Geometry source = o.adjoint ? field_grid : in.geometry();
  // The output's values come from IN; its grid is the field's (forward) or --like's (adjoint).
  NiftiMeta meta = meta_on_grid(in_info.meta, o.adjoint ? in_info.meta : field_info.meta);
  if (o.adjoint && !a.like.empty()) {
    const LikeGrid like = like_grid(a.like, in_info.meta);
    source = like.grid;
    meta = like.meta;
  }
  if (o.adjoint)
    VX_CHECK(in.geometry().dims[0] == fg.dims[0] && in.geometry().dims[1] == fg.dims[1] &&
                 in.geometry().dims[2] == fg.dims[2],
             InvalidArgument, "--adjoint: input ", a.input, " must be on the field's grid (", fg.dims[0], "x", fg.dims[1],
             "x", fg.dims[2], ")");
  // Converted in place: the field is the largest thing held (three values per voxel, in double).
  if (o.units == FieldUnits::Mm) field_mm_to_voxels<double>(field.view(), fg.affine, source.affine, field.view());
  ImageView<const double> uv = field.view();
  Geometry og = o.adjoint ? source : field_grid;
  og.dims[3] = in.geometry().dims[3];
  og.ndim = og.dims[3] > 1 ? 4 : 3;
  og.time_step = in.geometry().time_step;
  Image<double> out(og, no_init);
  for (int64_t t = 0; t < og.dims[3]; ++t) {
    const ImageView<const double> frame = ImageView<const double>(in.view()).frame(t);
    ImageView<double> of = out.view().frame(t);
    if (o.adjoint) {
      warp_displacement_adjoint<double>(frame, uv, 3, o.order, o.mode, of);
    } else {
      const Coefficients<double> c = spline_coefficients<double>(frame, 3, o.order, o.mode, 0.0);
      warp_displacement<double>(c, uv, of);
    }
  }
  NiftiWriteOptions w;
  w.dtype = a.common.dtype;
  w.meta = &meta;
  write_nifti(a.output, out, w);
  if (!a.common.quiet)
    std::printf("%s %s -> %s (%lldx%lldx%lld, field %s in %s units, degree %s, mode %s)\n", o.adjoint ? "adjoint warp" : "warp",
                a.input.c_str(), a.output.c_str(), (long long)og.dims[0], (long long)og.dims[1], (long long)og.dims[2],
                a.field.c_str(), field_unit_names().name(o.units).c_str(), order_name(o.order).c_str(),
                mode_name(o.mode).c_str());
}

} // namespace

void register_warp(CLI::App& app) {
  auto a = std::make_shared<WarpArgs>();
  CLI::App* cmd = add_command(app, "warp", "Apply a displacement field, or the exact adjoint of that warp", R"(
Forward: OUT(x) = IN(x + u(x)) for every voxel x of the field's grid. The field is a 4D NIfTI (X x Y x Z x 3).
--units voxel (default): u holds displacements in voxels of IN along its i, j, k axes (p = x + u).
--units mm: u holds world (RAS, mm) displacements: the point sampled is A_in^-1 (A_field x + u).
--adjoint: the transpose of that linear map (constant modes use 0 outside): IN lies on the field's grid
and OUT on the forward input's grid (--like REF; default the field's grid). <warp(f), g> = <f, adjoint(g)>
to rounding, for every degree and mode. 4D inputs are processed frame by frame. See docs/warp.md.)");
  cmd->add_option("input", a->input, "Input image (.nii/.nii.gz, 3D or 4D)")->required();
  cmd->add_option("--field", a->field, "Displacement field, 4D NIfTI with 3 components")->required();
  cmd->add_option("-o,--output", a->output, "Output image; written only when complete")->required();
  cmd->add_flag("--adjoint", a->warp.adjoint, "Apply the exact adjoint (transpose) of the warp instead");
  cmd->add_option("--like", a->like, "--adjoint: the grid of the forward warp's input (default: the field's grid)");
  add_choice(cmd, "--degree", a->warp.order, order_names(), "B-spline degree 0..7 or keys");
  add_choice(cmd, "--mode", a->warp.mode, mode_names(),
             "Boundary mode: itk (as antsApplyTransforms applies a displacement field: 0 where the point is more "
             "than half a voxel outside IN; see voxalign resample --help) or a scipy.ndimage mode name "
             "(constant, grid-constant, nearest, mirror, reflect, wrap, grid-wrap)");
  add_choice(cmd, "--units", a->warp.units, field_unit_names(), "Field units: voxel or mm");
  add_common_options(cmd, a->common);
  cmd->callback([a] {
    apply_threads(a->common.threads);
    check_nifti_output_path(a->output);
    check_distinct_files({{"the input", a->input}, {"--field", a->field}, {"--like", a->like}}, {{"-o", a->output}});
    run(*a);
  });
}

} // namespace voxalign::cli
