// voxalign register: rigid / similarity / affine registration of one or more moving images to a
// fixed image; writes the moved images and the transforms (ITK, FSL, RAS).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/memory.hpp"
#include "voxalign/core/progress.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/register/register.hpp"
#include "voxalign/register/syn.hpp"
#include "voxalign/resample/resample.hpp"
#include "voxalign/spline/modes.hpp"
#include "voxalign/transform/affine_io.hpp"
#include "voxalign/transform/displacement.hpp"

namespace voxalign::cli {
namespace {

struct RegisterArgs {
  std::vector<std::string> moving, output, save_itk, save_fsl, save_matrix;
  std::vector<std::string> save_warp, save_inverse_warp, save_jacobian; ///< --transform syn
  std::string fixed, fixed_mask, moving_mask;
  std::string init_file; ///< --init FILE ("" with --init center, moments or identity)
  RegisterOptions reg;
  SynOptions syn;
  ResampleOptions write; ///< how -o images are resampled (--write-degree)
  CommonArgs common;
};

std::vector<std::string> split_names(const std::string& s, const char* what) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t pos = 0;
  while (true) {
    const size_t comma = s.find(',', pos);
    out.push_back(s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    VX_CHECK(!out.back().empty(), InvalidArgument, what, ": '", s, "' has an empty item (give names separated by single commas)");
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

template <class T> std::vector<T> as_vector(const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); }

// Without -o, register writes the transform files only; with no output at all there is nothing to do.
// A command line without any (a bad command line: exit status 2, as a missing option).
void check_outputs(const RegisterArgs& a) {
  if (a.output.empty() && a.save_itk.empty() && a.save_fsl.empty() && a.save_matrix.empty() && a.save_warp.empty() &&
      a.save_inverse_warp.empty() && a.save_jacobian.empty())
    throw CLI::ValidationError("nothing to write: give -o (the moved images) and/or --save-transform, --save-fsl or --save-matrix");
  const bool syn = a.reg.transform == TransformType::Syn;
  VX_CHECK(syn || (a.save_warp.empty() && a.save_inverse_warp.empty() && a.save_jacobian.empty()), InvalidArgument,
           "--save-warp / --save-inverse-warp / --save-jacobian: only with --transform syn");
  for (const auto* v : {&a.save_warp, &a.save_inverse_warp, &a.save_jacobian})
    VX_CHECK(v->empty() || v->size() == a.moving.size(), InvalidArgument,
             "--save-warp / --save-inverse-warp / --save-jacobian: one file per moving image (", a.moving.size(), ")");
  VX_CHECK(a.output.empty() || a.output.size() == a.moving.size(), InvalidArgument, "-o: one output per moving image (",
           a.moving.size(), " moving, ", a.output.size(), " outputs)");
  for (const auto* v : {&a.save_itk, &a.save_fsl, &a.save_matrix})
    VX_CHECK(v->empty() || v->size() == a.moving.size(), InvalidArgument,
             "--save-transform / --save-fsl / --save-matrix: one file per moving image (", a.moving.size(), ")");
}

void run(const RegisterArgs& a) {
  RegisterOptions o = a.reg;
  NiftiWriteOptions w;
  w.dtype = a.common.dtype;
  NiftiHeaderInfo fixed_info;
  Image<float> fixed = read_image(a.fixed, "--fixed", &fixed_info);
  const Geometry fixed_geom = fixed.geometry(); // kept: the voxels are freed before the last image is resampled
  Image<float> fmask, mmask;
  if (!a.fixed_mask.empty()) fmask = read_mask(a.fixed_mask, "--fixed-mask");
  if (!a.moving_mask.empty()) mmask = read_mask(a.moving_mask, "--moving-mask");
  for (const auto& [m, opt, path] : {std::tuple{&fmask, "--fixed-mask", &a.fixed_mask}, {&mmask, "--moving-mask", &a.moving_mask}})
    VX_CHECK(m->size() == 0 || std::any_of(m->data(), m->data() + m->size(), [](float v) { return v != 0.0f; }),
             InvalidArgument, opt, " ", *path, ": the mask is empty (no non-zero voxel)");

  std::vector<std::string> written; // reported at the end: the files appear only when every image succeeded
  auto wrote = [&](const std::string& f) { written.push_back(f); };
  // Each moving image is written as soon as it is registered (the command's output transaction moves
  // the files into place only when every one succeeded), so memory holds one moving image at a time.
  for (size_t n = 0; n < a.moving.size(); ++n) {
    NiftiHeaderInfo moving_info;
    Image<float> moving = read_image(a.moving[n], "the moving image", &moving_info);
    if (!a.init_file.empty()) {
      try {
        o.init_matrix = read_transform(a.init_file, &fixed.geometry(), &moving.geometry());
      } catch (...) {
        rethrow_with_context("reading --init");
      }
      o.has_init_matrix = true;
    }
    const auto t0 = std::chrono::steady_clock::now();
    RegisterResult r;
    SynResult sr;
    const bool syn = o.transform == TransformType::Syn;
    ProgressReporter bar = ProgressReporter::to_stderr("register " + a.moving[n], a.common.quiet);
    try {
      const auto step = [&](const RegisterStep& s) {
        const double in_level = std::min(1.0, double(s.evaluation) / std::max(1, s.max_iterations));
        bar.update((s.level + in_level) / s.levels, "level " + std::to_string(s.level + 1) + "/" + std::to_string(s.levels));
      };
      const Image<float>* fm = fmask.size() ? &fmask : nullptr;
      const Image<float>* mm = mmask.size() ? &mmask : nullptr;
      if (syn) {
        DeformableResult d = register_deformable(fixed, moving, o, a.syn, fm, mm, step);
        r = std::move(d.affine), sr = std::move(d.syn);
      } else {
        r = register_images(fixed, moving, o, fm, mm, step);
      }
    } catch (...) {
      rethrow_with_context("registering " + a.moving[n] + " to " + a.fixed);
    }
    bar.finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Geometry moving_geom = moving.geometry();
    // Pages nothing reuses go back before the moved image is made: the estimation's buffers, and after
    // the last registration the fixed image's voxels.
    if (n + 1 == a.moving.size()) fixed = Image<float>();
    release_cached_buffers();
    Image<float> moved;
    if (!a.output.empty()) {
      if (syn) { // as `resample -t WARP -t AFFINE` does
        TransformChain chain;
        chain.append(std::make_shared<const DisplacementField>(sr.forward));
        chain.append(r.matrix);
        moved = resample_chain(moving, fixed_geom, chain, a.write);
      } else {
        moved = resample(moving, fixed_geom, r.matrix, a.write); // else transform files only
      }
    }
    moving = Image<float>();
    if (!a.common.quiet) {
      std::printf("%s -> %s: %s %s, %.2f s %s, metric %.6g\n ", a.moving[n].c_str(), a.fixed.c_str(),
                  syn ? "rigid, affine" : transform_names().name(o.transform).c_str(),
                  metric_names().name(o.metric).c_str(), secs, threads_used().c_str(), r.metric);
      std::printf(" %s\n", parameter_summary(r).c_str());
      if (syn) std::printf("  then syn %s, metric %.6g\n", metric_names().name(a.syn.metric).c_str(), sr.metric);
    }
    if (!a.save_itk.empty()) write_itk_transform(a.save_itk[n], r.matrix, "--save-transform"), wrote(a.save_itk[n]);
    if (!a.save_fsl.empty())
      write_fsl_matrix(a.save_fsl[n], r.matrix, fixed_geom, moving_geom), wrote(a.save_fsl[n]);
    if (!a.save_matrix.empty()) write_ras_matrix(a.save_matrix[n], r.matrix), wrote(a.save_matrix[n]);
    if (!a.save_warp.empty()) write_displacement_field(a.save_warp[n], sr.forward), wrote(a.save_warp[n]);
    if (!a.save_inverse_warp.empty())
      write_displacement_field(a.save_inverse_warp[n], sr.inverse), wrote(a.save_inverse_warp[n]);
    if (!a.save_jacobian.empty()) {
      NiftiWriteOptions jw;
      jw.meta = &fixed_info.meta;
      write_nifti(a.save_jacobian[n], jacobian_determinant(sr.forward), jw);
      wrote(a.save_jacobian[n]);
    }
    sr = SynResult();
    if (a.output.empty()) continue;
    const NiftiMeta meta = meta_on_grid(moving_info.meta, fixed_info.meta); // the moving image's header on the fixed grid
    w.meta = &meta;
    write_nifti(a.output[n], moved, w);
    wrote(a.output[n]);
  }
  if (!a.common.quiet)
    for (const std::string& f : written) std::printf("wrote %s\n", f.c_str());
}

} // namespace

void register_register(CLI::App& app) {
  auto a = std::make_shared<RegisterArgs>();
  CLI::App* cmd = add_command(app, "register", "Rigid, similarity, affine or deformable (SyN) registration to a fixed image", R"(
Finds the world-space (RAS mm) pull-back T, fixed point -> moving point, that aligns each MOVING image to
FIXED, and writes the moving image resampled on the fixed grid. T = c + t + R Z S (x - c) about the fixed
image's centre c (or its centre of mass with --init moments), refined coarse to fine over --levels.
Metrics: ssd (sum of squared differences; Gauss-Newton), ncc (normalised cross-correlation), lncc (local NCC
in windows of --radius voxels), mi (Mattes mutual information, --bins; for different contrasts); ncc, lncc
and mi use L-BFGS. Every gradient is exact (B-spline interpolation of --degree, analytic metric derivative).
--init: center (align geometric centres; default), moments (centres of mass), identity, or a transform file:
ITK .txt/.tfm, ANTs .mat (binary), FSL FLIRT .mat (text; fixed = reference, moving = input) or 4x4 RAS text.
Transforms written: --save-transform (ITK AffineTransform_double_3_3, LPS, as ANTs and SimpleITK read it:
.txt/.tfm ITK text, .mat ITK/ANTs binary MATLAB v4 as ANTs writes it, .h5 ITK HDF5; other names are refused),
--save-fsl (FLIRT .mat), --save-matrix (4x4 RAS pull-back). Without -o only the transform files are written
(give at least one --save-*). Several moving images: give one -o (when given) and one of each --save-* per
moving image, in order. --transform syn: rigid, then affine (the options above), then greedy symmetric
diffeomorphic registration (--syn-*; --fixed-mask limits its metric too); -o is the moving image through warp and affine, --save-transform the
affine, --save-warp the displacement field (apply as `resample -t WARP -t AFFINE`, antsApplyTransforms'
order). See docs/register.md.)");
  cmd->add_option("moving", a->moving, "Moving image(s) (.nii/.nii.gz, 2D or 3D)")->required();
  cmd->add_option("--fixed", a->fixed, "Fixed (reference) image")->required();
  cmd->add_option("-o,--output", a->output,
                  "Moved image(s) on the fixed grid, one per moving image (optional: without -o, only the transform files "
                  "given with --save-* are written)");
  RegisterOptions& o = a->reg;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  add_choice(cmd, "--transform", o.transform, transform_names(),
             "translation (3 parameters; 2D: 2), rigid (6; 3), similarity (7; 4), affine (12; 6) or syn (rigid, affine, "
             "then greedy SyN deformable with the --syn-* options; 3D)");
  add_choice(cmd, "--metric", o.metric, metric_names(),
             "ssd, ncc, lncc (local NCC) or mi (Mattes mutual information)");
  add_parsed(cmd, "--levels", join(o.levels, ","), "Shrink factors, coarse to fine (comma-separated)",
             [&o](const std::string& s) {
               o.levels = as_vector<int>(parse_number_list(s, "--levels", 1, 64, true));
               VX_CHECK(!o.levels.empty(), InvalidArgument, "--levels: give at least one shrink factor");
             });
  add_parsed(cmd, "--smoothing", join(o.smoothing, ","),
             "Gaussian sigma (mm) per level (default: shrink/2 fixed voxels, 0 at shrink 1); repeat a level with "
             "decreasing sigmas for a continuation in smoothing",
             [&o](const std::string& s) { o.smoothing = parse_number_list(s, "--smoothing", 0, kInf, false); });
  add_parsed(cmd, "--iterations", join(o.iterations, ","),
             "Maximum iterations, one value or one per level (default 40 gn, 100 others)",
             [&o](const std::string& s) { o.iterations = as_vector<int>(parse_number_list(s, "--iterations", 0, 1e9, true)); });
  add_choice(cmd, "--optimizer", o.optimizer, optimizer_names(), "auto (gn for ssd, lbfgs otherwise), gn, lbfgs, gd or adam");
  cmd->add_option("--fixed-mask", a->fixed_mask, "Mask on the fixed grid: only its non-zero voxels are compared");
  cmd->add_option("--moving-mask", a->moving_mask, "Mask on the moving grid: points mapped outside it are ignored");
  add_parsed(cmd, "--init", init_names().name(o.init),
             "center (align geometric centres), moments (centres of mass), identity, or a transform file: ITK "
             ".txt/.tfm, ANTs .mat (binary), FSL FLIRT .mat (text; fixed = reference, moving = input) or 4x4 RAS text",
             [a](const std::string& s) {
               const auto named = init_names().find(s);
               if (named) a->reg.init = *named;
               a->init_file = named ? "" : s;
             });
  add_parsed(cmd, "--freeze", join(o.freeze, ","), "Groups kept at their initial value: translation,rotation,scale,zoom,shear",
             [&o](const std::string& s) { o.freeze = split_names(s, "--freeze"); });
  cmd->add_option("--save-transform", a->save_itk,
                  "ITK transform file(s): .txt/.tfm ITK text, .mat ITK/ANTs binary (MATLAB v4), .h5 ITK HDF5");
  cmd->add_option("--save-fsl", a->save_fsl, "FSL FLIRT matrix file(s) (.mat)");
  cmd->add_option("--save-matrix", a->save_matrix, "4x4 RAS pull-back matrix text file(s)");
  cmd->add_option("--degree", o.degree, "B-spline degree of the moving image during estimation (1..5)")
      ->capture_default_str()
      ->check(number_check(1, 5, true));
  add_choice(cmd, "--write-degree", a->write.order, order_names(), "Interpolation of the written image: 0..7 or keys");
  cmd->add_option("--bins", o.bins, "mi: histogram bins")->capture_default_str()->check(number_check(8, 256, true));
  cmd->add_option("--radius", o.radius, "lncc: window radius in voxels")->capture_default_str()->check(number_check(1, 32, true));
  cmd->add_option("--samples", o.max_samples, "Largest number of fixed samples per level (regular subsampling above)")
      ->capture_default_str()
      ->check(number_check(64, double(int64_t(1) << 40), true));
  cmd->add_option("--tolerance", o.tolerance, "Stop a level when a step moves points by less (mm)")
      ->capture_default_str()
      ->check(number_check(0, kInf, false, true));
  cmd->add_flag_callback(
      "--keep-fill", [a] { a->reg.skip_fill = false; },
      "Also compare fixed voxels that are exactly 0 and samples whose moving interpolation touches such voxels "
      "(by default they are left out: zero is what resamplers write where they have no data)");
  cmd->add_option("--save-warp", a->save_warp,
                  "syn: the deformable part as an ITK displacement field (NIfTI vector, LPS mm, fixed point -> point "
                  "before the affine): apply as -t WARP -t AFFINE");
  cmd->add_option("--save-inverse-warp", a->save_inverse_warp, "syn: the inverse displacement field (same format)");
  cmd->add_option("--save-jacobian", a->save_jacobian, "syn: the Jacobian determinant of the warp on the fixed grid");
  SynOptions& so = a->syn;
  add_choice(cmd, "--syn-metric", so.metric, metric_names(), "syn: lncc (ANTs' CC), ssd or mi (Mattes' mutual information)");
  cmd->add_option("--syn-radius", so.radius, "syn: lncc window radius (voxels)")
      ->capture_default_str()
      ->check(number_check(1, 32, true));
  cmd->add_option("--syn-bins", so.bins, "syn: mi histogram bins")->capture_default_str()->check(number_check(8, 256, true));
  add_parsed(cmd, "--syn-levels", join(so.levels, ","),
             "syn: shrink factors, coarse to fine (default: from the fixed voxel size, the finest level at ~2 mm, "
             "then 2x and 4x: 8,4,2 at 1 mm, 4,2,1 at 2 mm)",
             [&so](const std::string& s) {
    so.levels = as_vector<int>(parse_number_list(s, "--syn-levels", 1, 64, true));
    VX_CHECK(!so.levels.empty(), InvalidArgument, "--syn-levels: give at least one shrink factor");
  });
  add_parsed(cmd, "--syn-smoothing", join(so.smoothing, ","),
             "syn: Gaussian sigma (mm) of the images per level (default: shrink/2 fixed voxels, 0 at shrink 1)",
             [&so](const std::string& s) { so.smoothing = parse_number_list(s, "--syn-smoothing", 0, kInf, false); });
  add_parsed(cmd, "--syn-iterations", join(so.iterations, ","), "syn: iterations, one value or one per level",
             [&so](const std::string& s) { so.iterations = as_vector<int>(parse_number_list(s, "--syn-iterations", 0, 1e6, true)); });
  cmd->add_option("--syn-step", so.step, "syn: largest update per iteration (voxels; ANTs SyN[step,...])")
      ->capture_default_str()
      ->check(number_check(0, 10, false, true));
  cmd->add_option("--syn-update-sigma", so.update_sigma,
                  "syn: Gaussian sigma of the update (voxels; ANTs' sqrt(updateFieldVariance), greedy -s 1st)")
      ->capture_default_str()
      ->check(number_check(0, 50));
  cmd->add_option("--syn-total-sigma", so.total_sigma,
                  "syn: Gaussian sigma of the field (voxels; ANTs' sqrt(totalFieldVariance), greedy -s 2nd)")
      ->capture_default_str()
      ->check(number_check(0, 50));
  cmd->add_option("--syn-convergence", so.convergence,
                  "syn: stop a level when the metric improved by less (relative) over the last 10 iterations")
      ->capture_default_str()
      ->check(number_check(0, 1));
  add_common_options(cmd, a->common);
  cmd->callback([a] {
    apply_threads(a->common.threads);
    check_outputs(*a);
    for (const auto& o : a->output) check_nifti_output_path(o);
    for (const auto* v : {&a->save_warp, &a->save_inverse_warp, &a->save_jacobian})
      for (const auto& f : *v) check_nifti_output_path(f), check_output_dir(f);
    for (const auto& f : a->save_itk) check_itk_transform_name(f, "--save-transform");
    for (const auto* v : {&a->save_itk, &a->save_fsl, &a->save_matrix})
      for (const auto& f : *v) check_output_dir(f);
    std::vector<std::pair<std::string, std::string>> inputs{{"--fixed", a->fixed}, {"--fixed-mask", a->fixed_mask},
                                                            {"--moving-mask", a->moving_mask}, {"--init", a->init_file}};
    for (const auto& m : a->moving) inputs.emplace_back("the moving image", m);
    std::vector<std::pair<std::string, std::string>> outputs;
    for (const auto& o : a->output) outputs.emplace_back("-o", o);
    for (const auto& f : a->save_itk) outputs.emplace_back("--save-transform", f);
    for (const auto& f : a->save_fsl) outputs.emplace_back("--save-fsl", f);
    for (const auto& f : a->save_matrix) outputs.emplace_back("--save-matrix", f);
    for (const auto& f : a->save_warp) outputs.emplace_back("--save-warp", f);
    for (const auto& f : a->save_inverse_warp) outputs.emplace_back("--save-inverse-warp", f);
    for (const auto& f : a->save_jacobian) outputs.emplace_back("--save-jacobian", f);
    check_distinct_files(inputs, outputs);
    run(*a);
  });
}

} // namespace voxalign::cli
