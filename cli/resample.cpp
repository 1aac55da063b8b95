// voxalign resample: resample an image onto another grid through world-space affine transforms.
#include <cstdio>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/resample/resample.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign::cli {
namespace {

struct ResampleArgs {
  std::string input, output, like;
  std::vector<std::string> transforms;
  ResampleOptions resample;
  CommonArgs common;
};

template <class T> void run_typed(const ResampleArgs& a, const Image<T>& in, const NiftiHeaderInfo& info) {
  Geometry target = in.geometry();
  NiftiMeta meta = info.meta; // the input's header; on --like's grid, that grid's codes
  if (!a.like.empty()) {
    const LikeGrid like = like_grid(a.like, info.meta);
    target = like.grid;
    meta = like.meta;
  }
  std::vector<Mat4> ts;
  for (const auto& f : a.transforms) {
    try {
      // A FLIRT matrix maps between the output grid and IN's: known only when it is the only transform.
      const bool alone = a.transforms.size() == 1;
      VX_CHECK(alone || transform_file_format(f) != TransformFormat::FslFlirt, IoError, f,
               ": an FSL FLIRT matrix can only be given alone (it maps the output grid to IN's grid)");
      ts.push_back(read_transform(f, alone ? &target : nullptr, alone ? &in.geometry() : nullptr));
    } catch (...) {
      rethrow_with_context("reading --transform");
    }
  }
  Image<T> out;
  try {
    out = resample(in, target, compose_in_order(ts), a.resample);
  } catch (...) {
    rethrow_with_context(a.like.empty() ? std::string("resampling") : "resampling onto the grid of --like " + a.like);
  }
  NiftiWriteOptions w;
  w.dtype = a.common.dtype;
  w.meta = &meta;
  write_nifti(a.output, out, w);
  if (!a.common.quiet) {
    const auto& g = out.geometry();
    std::printf("resampled %s -> %s (%lldx%lldx%lld", a.input.c_str(), a.output.c_str(), (long long)g.dims[0],
                (long long)g.dims[1], (long long)g.dims[2]);
    if (g.dims[3] > 1) std::printf("x%lld", (long long)g.dims[3]);
    std::printf(", interpolation %s, mode %s, %zu transform(s), %s)\n", order_name(a.resample.order).c_str(),
                mode_name(a.resample.mode).c_str(), ts.size(), dtype_name(a.common.dtype).c_str());
  }
}

void run(const ResampleArgs& a) {
  NiftiHeaderInfo info;
  std::variant<Image<float>, Image<double>> in;
  try {
    in = read_nifti_float_or_double(a.input, a.common.dtype == DataType::Float64, &info);
  } catch (...) {
    rethrow_with_context("reading input");
  }
  std::visit([&](auto& image) { run_typed(a, image, info); }, in);
}

} // namespace

void register_resample(CLI::App& app) {
  auto a = std::make_shared<ResampleArgs>();
  CLI::App* cmd = add_command(app, "resample", "Resample an image onto another grid through world-space transforms", R"(
Resamples IN onto the grid of --like REF (default: IN's own grid) through world-space affine transforms.
Transforms are pull-backs (output point -> input point, as ITK/ANTs files are) and are applied to the
output point in the order given: with -t A -t B the output point x samples IN at B(A(x)). Note that this
is the reverse of antsApplyTransforms' stack order. 4D inputs are resampled frame by frame. Computation is
in float32, or float64 when the input is float64/int32/int64 or --dtype float64.)");
  cmd->add_option("input", a->input, "Input image (.nii or .nii.gz)")->required();
  cmd->add_option("-o,--output", a->output, "Output image (.nii or .nii.gz); written only when complete")->required();
  cmd->add_option("--like", a->like, "Reference image whose grid (dimensions and voxel-to-world matrix) the output takes");
  cmd->add_option("-t,--transform", a->transforms,
                  "Transform file, repeatable: a 4x4 RAS matrix in a text file, an ITK Insight Transform text file "
                  "(AffineTransform, MatrixOffsetTransformBase, Euler3DTransform, VersorRigid3DTransform, "
                  "Similarity3DTransform, TranslationTransform; LPS as ITK writes them) or an ANTs/ITK .mat file");
  add_choice(cmd, "--degree", a->resample.order, order_names(),
             "Interpolation: B-spline degree 0..7 (0 nearest, 1 linear, >= 2 prefiltered, interpolating) or keys "
             "(Catmull-Rom cubic convolution)");
  add_choice(cmd, "--mode", a->resample.mode, mode_names(),
             "Boundary mode: itk (as antsApplyTransforms and SimpleITK: cval where the point is more than half a "
             "voxel outside the input, i.e. outside [-0.5, n-0.5); inside, B-splines mirror and linear/nearest "
             "clamp as ITK's interpolators do), or a scipy.ndimage mode: grid-constant (the input is extended by "
             "cval and the spline interpolates towards it beyond the edges), constant (cval wherever the point is "
             "outside [0, n-1], even by rounding), nearest, mirror, reflect (= grid-mirror), wrap, grid-wrap");
  cmd->add_option("--cval", a->resample.cval, "Value outside the input for the modes itk, constant and grid-constant (a finite number)")
      ->capture_default_str()
      ->check(number_check(-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()));
  add_common_options(cmd, a->common, "Output data type (integers are rounded half away from zero and clamped)");
  cmd->callback([a] {
    apply_threads(a->common.threads);
    check_nifti_output_path(a->output);
    std::vector<std::pair<std::string, std::string>> inputs{{"the input", a->input}, {"--like", a->like}};
    for (const auto& t : a->transforms) inputs.emplace_back("--transform", t);
    check_distinct_files(inputs, {{"-o", a->output}});
    run(*a);
  });
}

} // namespace voxalign::cli
