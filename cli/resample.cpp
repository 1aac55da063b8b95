// voxalign resample: resample an image onto another grid through world-space affine transforms.
#include <algorithm>
#include <cstdio>
#include <future>
#include <limits>
#include <string>
#include <variant>
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
  std::string input, output, like;
  std::vector<std::string> transforms;
  ResampleOptions resample;
  CommonArgs common;
};

void print_summary(const ResampleArgs& a, const Geometry& g) {
  std::printf("resampled %s -> %s (%lldx%lldx%lld", a.input.c_str(), a.output.c_str(), (long long)g.dims[0],
              (long long)g.dims[1], (long long)g.dims[2]);
  if (g.dims[3] > 1) std::printf("x%lld", (long long)g.dims[3]);
  std::printf(", interpolation %s, mode %s, %zu transform(s), %s)\n", order_name(a.resample.order).c_str(),
              mode_name(a.resample.mode).c_str(), a.transforms.size(), dtype_name(a.common.dtype).c_str());
}

template <class T> void run_typed(const ResampleArgs& a, const Image<T>& in, const NiftiHeaderInfo& info) {
  Geometry target = in.geometry();
  NiftiMeta meta = info.meta; // the input's header; on --like's grid, that grid's codes
  if (!a.like.empty()) {
    const LikeGrid like = like_grid(a.like, info.meta);
    target = like.grid;
    meta = like.meta;
  }
  TransformChain chain;
  try {
    chain = read_transform_chain(a.transforms, &target, &in.geometry());
  } catch (...) {
    rethrow_with_context("reading --transform");
  }
  Image<T> out;
  try {
    out = resample_chain(in, target, chain, a.resample);
  } catch (...) {
    rethrow_with_context(a.like.empty() ? std::string("resampling") : "resampling onto the grid of --like " + a.like);
  }
  NiftiWriteOptions w;
  w.dtype = a.common.dtype;
  w.meta = &meta;
  write_nifti(a.output, out, w);
  if (!a.common.quiet) print_summary(a, out.geometry());
}

// A 4D series computed in float32 is streamed: read, resampled and written a chunk of frames at a
// time, so memory holds one chunk of input and output, not the series twice. Frames are independent,
// so the output is the same bytes as resampling the whole series at once.
bool run_streamed(const ResampleArgs& a) {
  NiftiFrameReader reader = [&] {
    try {
      return NiftiFrameReader(a.input);
    } catch (...) {
      rethrow_with_context("reading input");
    }
  }();
  const NiftiHeaderInfo& info = reader.info();
  const Geometry ig = info.geometry;
  const int64_t frames = reader.frames();
  if (frames < 2 || ig.dims[3] != frames || read_in_double(info.dtype, a.common.dtype)) return false;
  Geometry target = ig;
  NiftiMeta meta = info.meta;
  if (!a.like.empty()) {
    const LikeGrid like = like_grid(a.like, info.meta);
    target = like.grid;
    meta = like.meta;
  }
  TransformChain chain;
  try {
    chain = read_transform_chain(a.transforms, &target, &ig);
  } catch (...) {
    rethrow_with_context("reading --transform");
  }
  Geometry og = target;
  og.dims[3] = frames;
  og.ndim = 4;
  og.time_step = ig.time_step;
  NiftiWriteOptions w;
  w.dtype = a.common.dtype;
  w.meta = &meta;
  NiftiWriter writer(a.output, og, w);
  // Chunks of ~64 MB of input: large enough that a field chain's point map (computed once per chunk)
  // and the threads' start-up are amortised.
  const int64_t per = std::clamp<int64_t>((int64_t(64) << 20) / std::max<int64_t>(1, 4 * ig.frame_size()), 1, frames);
  const int axes = interpolated_axes(ig);
  auto load = [&](int64_t t0) {
    Geometry cg = ig;
    cg.dims[3] = std::min(per, frames - t0);
    Image<float> in(cg, no_init);
    for (int64_t t = 0; t < cg.dims[3]; ++t) reader.read(t0 + t, in.view().frame(t).data);
    return in;
  };
  // The next chunk is read (and, from .nii.gz, inflated) while this one is resampled.
  std::future<Image<float>> ahead = std::async(std::launch::async, load, int64_t(0));
  for (int64_t t0 = 0; t0 < frames; t0 += per) {
    Image<float> in = ahead.get();
    if (t0 + per < frames) ahead = std::async(std::launch::async, load, t0 + per);
    Geometry cout = og;
    cout.dims[3] = in.geometry().dims[3];
    Image<float> out(cout, no_init);
    try {
      resample_chain_into<float>(in.view(), ig.affine, axes, out.view(), og.affine, chain, a.resample);
    } catch (...) {
      rethrow_with_context(a.like.empty() ? std::string("resampling") : "resampling onto the grid of --like " + a.like);
    }
    writer.append(out.data(), out.size());
  }
  writer.finish();
  if (!a.common.quiet) print_summary(a, og);
  return true;
}

void run(const ResampleArgs& a) {
  if (run_streamed(a)) return;
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
Resamples IN onto the grid of --like REF (default: IN's own grid) through world-space transforms: affine
matrices and displacement fields. Transforms are pull-backs (output point -> input point, as ITK/ANTs files
are) and are applied to the output point in the order given: with -t A -t B the output point x samples IN
at B(A(x)). This is antsApplyTransforms' order: its -t A -t B samples at B(A(x)) too (ANTs' help says the
last -t is applied first, speaking of the input image: docs/transforms.md). 4D inputs are resampled frame
by frame, and streamed when computed in float32: read, resampled and written ~64 MB of frames at a time.
Computation is in float32, or float64 when the input is float64/int32/int64 or --dtype float64.)");
  cmd->add_option("input", a->input, "Input image (.nii or .nii.gz)")->required();
  cmd->add_option("-o,--output", a->output, "Output image (.nii or .nii.gz); written only when complete")->required();
  cmd->add_option("--like", a->like, "Reference image whose grid (dimensions and voxel-to-world matrix) the output takes");
  cmd->add_option("-t,--transform", a->transforms,
                  "Transform file, repeatable: a 4x4 RAS matrix in a text file, an ITK Insight Transform text file "
                  "(AffineTransform, MatrixOffsetTransformBase, Euler3DTransform, VersorRigid3DTransform, "
                  "Similarity3DTransform, TranslationTransform; LPS as ITK writes them), an ANTs/ITK .mat file, an ITK "
                  ".h5 file (those types, DisplacementFieldTransform, and composites of them, as antsRegistration "
                  "writes), or a displacement field .nii/.nii.gz (ITK/ANTs vector image X x Y x Z x 1 x 3, LPS mm)");
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
