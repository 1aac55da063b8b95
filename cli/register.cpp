// voxalign register: rigid / similarity / affine registration of one or more moving images to a
// fixed image; writes the moved images and the transforms (ITK, FSL, RAS).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/register/register.hpp"
#include "voxalign/resample/resample.hpp"
#include "voxalign/spline/modes.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign::cli {
namespace {

struct RegisterArgs {
  std::vector<std::string> moving, output, save_itk, save_fsl, save_matrix;
  std::string fixed, fixed_mask, moving_mask, init = "center", levels = "4,2,1", smoothing, iterations, freeze;
  std::string transform = "rigid", metric = "ssd", optimizer = "auto", dtype = "float32", write_degree = "3";
  int degree = 3, bins = 32, radius = 2;
  int64_t samples = 1 << 16;
  double tolerance = 1e-3;
  bool quiet = false, keep_fill = false;
  int threads = 0;
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

// The lists, checked the same way wherever they are parsed (callback and run).
std::vector<int> levels_of(const RegisterArgs& a) { return as_vector<int>(parse_number_list(a.levels, "--levels", 1, 64, true)); }
std::vector<double> smoothing_of(const RegisterArgs& a) {
  return parse_number_list(a.smoothing, "--smoothing", 0, std::numeric_limits<double>::infinity(), false);
}
std::vector<int> iterations_of(const RegisterArgs& a) {
  return as_vector<int>(parse_number_list(a.iterations, "--iterations", 0, 1e9, true));
}

// Without -o, register writes the transform files only; with no output at all there is nothing to do.
// A command line without any (a bad command line: exit status 2, as a missing option).
void check_outputs(const RegisterArgs& a) {
  if (a.output.empty() && a.save_itk.empty() && a.save_fsl.empty() && a.save_matrix.empty())
    throw CLI::ValidationError("nothing to write: give -o (the moved images) and/or --save-transform, --save-fsl or --save-matrix");
  VX_CHECK(a.output.empty() || a.output.size() == a.moving.size(), InvalidArgument, "-o: one output per moving image (",
           a.moving.size(), " moving, ", a.output.size(), " outputs)");
}

void run(const RegisterArgs& a) {
  check_outputs(a);
  for (const auto* v : {&a.save_itk, &a.save_fsl, &a.save_matrix})
    VX_CHECK(v->empty() || v->size() == a.moving.size(), InvalidArgument,
             "--save-transform / --save-fsl / --save-matrix: one file per moving image (", a.moving.size(), ")");
  RegisterOptions o;
  o.transform = a.transform;
  o.metric = a.metric;
  o.levels = levels_of(a);
  VX_CHECK(!o.levels.empty(), InvalidArgument, "--levels: give at least one shrink factor");
  o.smoothing = smoothing_of(a);
  o.iterations = iterations_of(a);
  o.freeze = split_names(a.freeze, "--freeze");
  o.optimizer = a.optimizer;
  o.degree = a.degree;
  o.bins = a.bins;
  o.radius = a.radius;
  o.max_samples = a.samples;
  o.tolerance = a.tolerance;
  o.skip_fill = !a.keep_fill;
  const int write_order = parse_order(a.write_degree);
  NiftiWriteOptions w;
  w.dtype = parse_dtype(a.dtype);
  transform_groups(o.transform); // validate names before reading anything big

  NiftiHeaderInfo fixed_info;
  const Image<float> fixed = read_image(a.fixed, "--fixed", &fixed_info);
  Image<float> fmask, mmask;
  if (!a.fixed_mask.empty()) fmask = read_mask(a.fixed_mask, "--fixed-mask");
  if (!a.moving_mask.empty()) mmask = read_mask(a.moving_mask, "--moving-mask");
  const bool init_file = a.init != "center" && a.init != "moments" && a.init != "identity";
  if (!init_file) o.init = a.init;

  struct Done {
    Image<float> moved;
    Mat4 matrix;
    Geometry moving_geom;
    NiftiMeta meta; // the moving image's header on the fixed grid
  };
  std::vector<Done> done;
  for (size_t n = 0; n < a.moving.size(); ++n) {
    NiftiHeaderInfo moving_info;
    const Image<float> moving = read_image(a.moving[n], "the moving image", &moving_info);
    if (init_file) {
      try {
        o.init_matrix = read_transform(a.init, &fixed.geometry(), &moving.geometry());
      } catch (...) {
        rethrow_with_context("reading --init");
      }
      o.has_init_matrix = true;
    }
    const auto t0 = std::chrono::steady_clock::now();
    RegisterResult r;
    try {
      r = register_images(fixed, moving, o, fmask.size() ? &fmask : nullptr, mmask.size() ? &mmask : nullptr);
    } catch (...) {
      rethrow_with_context("registering " + a.moving[n] + " to " + a.fixed);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Done d{Image<float>(), r.matrix, moving.geometry(), meta_on_grid(moving_info.meta, fixed_info.meta)};
    if (!a.output.empty()) { // transform files only: no image to resample
      ResampleOptions ro;
      ro.order = write_order;
      d.moved = resample(moving, fixed.geometry(), r.matrix, ro);
    }
    if (!a.quiet) {
      std::printf("%s -> %s: %s %s, %.2f s %s, metric %.6g\n ", a.moving[n].c_str(), a.fixed.c_str(),
                  o.transform.c_str(), o.metric.c_str(), secs, threads_used().c_str(), r.metric);
      for (size_t p = 0; p < r.names.size(); ++p) std::printf(" %s=%.6g", r.names[p].c_str(), r.parameters[p]);
      std::printf("\n");
    }
    done.push_back(std::move(d));
  }
  // Everything is computed: write (each file through a temporary name).
  for (size_t n = 0; n < done.size(); ++n) {
    auto wrote = [&](const std::string& f) {
      if (!a.quiet) std::printf("wrote %s\n", f.c_str());
    };
    if (!a.save_itk.empty()) write_itk_transform(a.save_itk[n], done[n].matrix, "--save-transform"), wrote(a.save_itk[n]);
    if (!a.save_fsl.empty())
      write_fsl_matrix(a.save_fsl[n], done[n].matrix, fixed.geometry(), done[n].moving_geom), wrote(a.save_fsl[n]);
    if (!a.save_matrix.empty()) write_ras_matrix(a.save_matrix[n], done[n].matrix), wrote(a.save_matrix[n]);
    if (a.output.empty()) continue;
    w.meta = &done[n].meta;
    write_nifti(a.output[n], done[n].moved, w);
    wrote(a.output[n]);
  }
}

} // namespace

void register_register(CLI::App& app) {
  auto a = std::make_shared<RegisterArgs>();
  CLI::App* cmd = app.add_subcommand("register", "Rigid, similarity or affine registration to a fixed image");
  cmd->footer(
      "Finds the world-space (RAS mm) pull-back T, fixed point -> moving point, that aligns each MOVING image to\n"
      "FIXED, and writes the moving image resampled on the fixed grid. T = c + t + R Z S (x - c) about the fixed\n"
      "image's centre c (or its centre of mass with --init moments), refined coarse to fine over --levels.\n"
      "Metrics: ssd (sum of squared differences; Gauss-Newton), ncc (normalised cross-correlation), lncc (local NCC\n"
      "in windows of --radius voxels), mi (Mattes mutual information, --bins; for different contrasts); ncc, lncc\n"
      "and mi use L-BFGS. Every gradient is exact (B-spline interpolation of --degree, analytic metric derivative).\n"
      "--init: center (align geometric centres; default), moments (centres of mass), identity, or a transform file:\n"
      "ITK .txt/.tfm, ANTs .mat (binary), FSL FLIRT .mat (text; fixed = reference, moving = input) or 4x4 RAS text.\n"
      "Transforms written: --save-transform (ITK AffineTransform_double_3_3, LPS, as ANTs and SimpleITK read it:\n"
      ".txt/.tfm ITK text, .mat ITK/ANTs binary MATLAB v4 as ANTs writes it, .h5 ITK HDF5; other names are refused),\n"
      "--save-fsl (FLIRT .mat), --save-matrix (4x4 RAS pull-back). Without -o only the transform files are written\n"
      "(give at least one --save-*). Several moving images: give one -o (when given) and one of each --save-* per\n"
      "moving image, in order. See docs/register.md.");
  cmd->add_option("moving", a->moving, "Moving image(s) (.nii/.nii.gz, 2D or 3D)")->required();
  cmd->add_option("--fixed", a->fixed, "Fixed (reference) image")->required();
  cmd->add_option("-o,--output", a->output,
                  "Moved image(s) on the fixed grid, one per moving image (optional: without -o, only the transform files "
                  "given with --save-* are written)");
  cmd->add_option("--transform", a->transform, "translation, rigid, similarity or affine")
      ->capture_default_str()
      ->check(CLI::IsMember({"translation", "rigid", "similarity", "affine"}));
  cmd->add_option("--metric", a->metric, "ssd, ncc, lncc or mi")
      ->capture_default_str()
      ->check(CLI::IsMember({"ssd", "ncc", "lncc", "mi"}));
  cmd->add_option("--levels", a->levels, "Shrink factors, coarse to fine (comma-separated)")->capture_default_str();
  cmd->add_option("--smoothing", a->smoothing,
                  "Gaussian sigma (mm) per level (default: shrink/2 fixed voxels, 0 at shrink 1); repeat a level with "
                  "decreasing sigmas for a continuation in smoothing");
  cmd->add_option("--iterations", a->iterations, "Maximum iterations, one value or one per level (default 40 gn, 100 others)");
  cmd->add_option("--optimizer", a->optimizer, "auto (gn for ssd, lbfgs otherwise), gn, lbfgs, gd or adam")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "gn", "lbfgs", "gd", "adam"}));
  cmd->add_option("--fixed-mask", a->fixed_mask, "Mask on the fixed grid: only its non-zero voxels are compared");
  cmd->add_option("--moving-mask", a->moving_mask, "Mask on the moving grid: points mapped outside it are ignored");
  cmd->add_option("--init", a->init, "center, moments, identity or a transform file")->capture_default_str();
  cmd->add_option("--freeze", a->freeze, "Groups kept at their initial value: translation,rotation,scale,zoom,shear");
  cmd->add_option("--save-transform", a->save_itk,
                  "ITK transform file(s): .txt/.tfm ITK text, .mat ITK/ANTs binary (MATLAB v4), .h5 ITK HDF5");
  cmd->add_option("--save-fsl", a->save_fsl, "FSL FLIRT matrix file(s) (.mat)");
  cmd->add_option("--save-matrix", a->save_matrix, "4x4 RAS pull-back matrix text file(s)");
  cmd->add_option("--degree", a->degree, "B-spline degree of the moving image during estimation (1..5)")
      ->capture_default_str()
      ->check(number_check(1, 5, true));
  cmd->add_option("--write-degree", a->write_degree, "Interpolation of the written image: 0..7 or keys")->capture_default_str();
  cmd->add_option("--bins", a->bins, "mi: histogram bins")->capture_default_str()->check(number_check(8, 256, true));
  cmd->add_option("--radius", a->radius, "lncc: window radius in voxels")->capture_default_str()->check(number_check(1, 32, true));
  cmd->add_option("--samples", a->samples, "Largest number of fixed samples per level (regular subsampling above)")
      ->capture_default_str()
      ->check(number_check(64, double(int64_t(1) << 40), true));
  cmd->add_option("--tolerance", a->tolerance, "Stop a level when a step moves points by less (mm)")
      ->capture_default_str()
      ->check(number_check(0, std::numeric_limits<double>::infinity(), false, true));
  cmd->add_flag("--keep-fill", a->keep_fill,
                "Also compare fixed voxels that are exactly 0 and samples whose moving interpolation touches such voxels "
                "(by default they are left out: zero is what resamplers write where they have no data)");
  cmd->add_option("--dtype", a->dtype, "Output data type")->capture_default_str();
  cmd->add_flag("-q,--quiet", a->quiet, "Print nothing on success");
  add_threads_option(cmd, a->threads);
  cmd->callback([a] {
    apply_threads(a->threads);
    parse_dtype(a->dtype);
    parse_order(a->write_degree);
    levels_of(*a), smoothing_of(*a), iterations_of(*a); // refuse bad lists before reading anything
    check_outputs(*a);
    for (const auto& o : a->output) check_nifti_output_path(o);
    for (const auto& f : a->save_itk) check_itk_transform_name(f, "--save-transform");
    for (const auto* v : {&a->save_itk, &a->save_fsl, &a->save_matrix})
      for (const auto& f : *v) check_output_dir(f);
    std::vector<std::pair<std::string, std::string>> inputs{{"--fixed", a->fixed}, {"--fixed-mask", a->fixed_mask},
                                                            {"--moving-mask", a->moving_mask}};
    for (const auto& m : a->moving) inputs.emplace_back("the moving image", m);
    if (a->init != "center" && a->init != "moments" && a->init != "identity") inputs.emplace_back("--init", a->init);
    std::vector<std::pair<std::string, std::string>> outputs;
    for (const auto& o : a->output) outputs.emplace_back("-o", o);
    for (const auto& f : a->save_itk) outputs.emplace_back("--save-transform", f);
    for (const auto& f : a->save_fsl) outputs.emplace_back("--save-fsl", f);
    for (const auto& f : a->save_matrix) outputs.emplace_back("--save-matrix", f);
    check_distinct_files(inputs, outputs);
    run(*a);
  });
}

} // namespace voxalign::cli
