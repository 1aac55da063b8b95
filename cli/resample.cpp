// voxalign resample: resample an image onto another grid through world-space affine transforms.
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/resample/resample.hpp"
#include "voxalign/transform/affine_io.hpp"
#include "voxalign/transform/displacement.hpp"

namespace voxalign::cli {
namespace {

struct ResampleArgs {
  std::string input, output, like, degree = "3", mode = mode_name(kResampleDefaultMode), dtype = "float32";
  std::vector<std::string> transforms;
  double cval = 0.0;
  int threads = 0;
  bool quiet = false;
};

template <class T> void run_typed(const ResampleArgs& a) {
  NiftiHeaderInfo info;
  Image<T> in;
  try {
    in = read_nifti<T>(a.input, &info);
  } catch (...) {
    rethrow_with_context("reading input");
  }
  Geometry target = in.geometry();
  NiftiMeta meta = info.meta; // the input's header; on --like's grid, that grid's codes
  if (!a.like.empty()) {
    try {
      const NiftiHeaderInfo like = read_nifti_header(a.like);
      target = like.geometry;
      meta = meta_on_grid(info.meta, like.meta);
    } catch (...) {
      rethrow_with_context("reading --like");
    }
  }
  TransformChain chain;
  try {
    chain = read_transform_chain(a.transforms, &target, &in.geometry());
  } catch (...) {
    rethrow_with_context("reading --transform");
  }
  ResampleOptions opts;
  opts.order = parse_order(a.degree);
  opts.mode = parse_mode(a.mode);
  opts.cval = a.cval;
  Image<T> out;
  try {
    out = resample_chain(in, target, chain, opts);
  } catch (...) {
    rethrow_with_context(a.like.empty() ? std::string("resampling") : "resampling onto the grid of --like " + a.like);
  }
  NiftiWriteOptions w;
  w.dtype = parse_dtype(a.dtype);
  w.meta = &meta;
  write_nifti(a.output, out, w);
  if (!a.quiet) {
    const auto& g = out.geometry();
    std::printf("resampled %s -> %s (%lldx%lldx%lld", a.input.c_str(), a.output.c_str(), (long long)g.dims[0],
                (long long)g.dims[1], (long long)g.dims[2]);
    if (g.dims[3] > 1) std::printf("x%lld", (long long)g.dims[3]);
    std::printf(", interpolation %s, mode %s, %zu transform(s), %s)\n", order_name(opts.order).c_str(),
                mode_name(opts.mode).c_str(), a.transforms.size(), a.dtype.c_str());
  }
}

} // namespace

void register_resample(CLI::App& app) {
  auto a = std::make_shared<ResampleArgs>();
  CLI::App* cmd = app.add_subcommand("resample", "Resample an image onto another grid through world-space transforms");
  cmd->footer(
      "Resamples IN onto the grid of --like REF (default: IN's own grid) through world-space transforms: affine\n"
      "matrices and displacement fields. Transforms are pull-backs (output point -> input point, as ITK/ANTs files\n"
      "are) and are applied to the output point in the order given: with -t A -t B the output point x samples IN\n"
      "at B(A(x)). This is antsApplyTransforms' order: its -t A -t B samples at B(A(x)) too (ANTs' help says the\n"
      "last -t is applied first, speaking of the input image: docs/transforms.md). 4D inputs are resampled frame\n"
      "by frame.");
  cmd->add_option("input", a->input, "Input image (.nii or .nii.gz)")->required();
  cmd->add_option("-o,--output", a->output, "Output image (.nii or .nii.gz); written only when complete")->required();
  cmd->add_option("--like", a->like, "Reference image whose grid (dimensions and voxel-to-world matrix) the output takes");
  cmd->add_option("-t,--transform", a->transforms,
                  "Transform file, repeatable: a 4x4 RAS matrix in a text file, an ITK Insight Transform text file "
                  "(AffineTransform, MatrixOffsetTransformBase, Euler3DTransform, VersorRigid3DTransform, "
                  "Similarity3DTransform, TranslationTransform; LPS as ITK writes them), an ANTs/ITK .mat file, an ITK "
                  ".h5 file (those types, DisplacementFieldTransform, and composites of them, as antsRegistration "
                  "writes), or a displacement field .nii/.nii.gz (ITK/ANTs vector image X x Y x Z x 1 x 3, LPS mm)");
  cmd->add_option("--degree", a->degree,
                  "Interpolation: B-spline degree 0..7 (0 nearest, 1 linear, >= 2 prefiltered, interpolating) or keys "
                  "(Catmull-Rom cubic convolution)")
      ->capture_default_str();
  cmd->add_option("--mode", a->mode,
                  "Boundary mode: itk (as antsApplyTransforms and SimpleITK: cval where the point is more than half a "
                  "voxel outside the input, i.e. outside [-0.5, n-0.5); inside, B-splines mirror and linear/nearest "
                  "clamp as ITK's interpolators do), or a scipy.ndimage mode: grid-constant (the input is extended by "
                  "cval and the spline interpolates towards it beyond the edges), constant (cval wherever the point is "
                  "outside [0, n-1], even by rounding), nearest, mirror, reflect (= grid-mirror), wrap, grid-wrap")
      ->capture_default_str();
  cmd->add_option("--cval", a->cval, "Value outside the input for the modes itk, constant and grid-constant (a finite number)")
      ->capture_default_str()
      ->check(number_check(-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()));
  cmd->add_option("--dtype", a->dtype,
                  "Output data type: float32, float64, uint8, int8, int16, uint16, int32, uint32, int64, uint64 "
                  "(integers are rounded half away from zero and clamped)")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", a->quiet, "Print nothing on success");
  add_threads_option(cmd, a->threads);
  cmd->callback([a] {
    apply_threads(a->threads);
    parse_order(a->degree); // validate options before reading anything
    parse_mode(a->mode);
    parse_dtype(a->dtype);
    check_nifti_output_path(a->output);
    std::vector<std::pair<std::string, std::string>> inputs{{"the input", a->input}, {"--like", a->like}};
    for (const auto& t : a->transforms) inputs.emplace_back("--transform", t);
    check_distinct_files(inputs, {{"-o", a->output}});
    const DataType on_disk = read_nifti_header(a->input).dtype;
    const bool wide = on_disk == DataType::Float64 || on_disk == DataType::Int32 || on_disk == DataType::UInt32 ||
                      on_disk == DataType::Int64 || on_disk == DataType::UInt64 || a->dtype == "float64";
    if (wide) run_typed<double>(*a);
    else run_typed<float>(*a);
  });
}

} // namespace voxalign::cli
