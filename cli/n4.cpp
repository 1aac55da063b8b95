// voxalign n4: N4 bias-field correction with ANTs' N4BiasFieldCorrection options and defaults.
#include <chrono>
#include <limits>
#include <cstdio>
#include <string>
#include <vector>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/memory.hpp"
#include "voxalign/core/progress.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/n4/n4.hpp"

namespace voxalign::cli {
namespace {

struct N4Args {
  std::string input, output, mask, weight, bias_out;
  N4Options n4;
  CommonArgs common;
  bool verbose = false;
};

/// A same-grid companion image (mask or weight) of the input, as float.
Image<float> read_companion(const std::string& path, const Geometry& grid, const char* what) {
  Image<float> im = read_mask(path, what); // 2D/3D only, as every command's masks
  const Geometry& g = im.geometry();
  VX_CHECK(g.dims[0] == grid.dims[0] && g.dims[1] == grid.dims[1] && g.dims[2] == grid.dims[2], InvalidArgument, what, " ",
           path, " is not on the input's grid (", g.dims[0], "x", g.dims[1], "x", g.dims[2], " voxels vs ", grid.dims[0], "x",
           grid.dims[1], "x", grid.dims[2], "); resample it first");
  VX_CHECK(g.same_grid(grid), InvalidArgument, what, " ", path,
           " is not on the input's grid (same size, different voxel-to-world matrix: max difference ",
           (g.affine - grid.affine).cwiseAbs().maxCoeff(), " mm); resample it first");
  return im;
}

void run(const N4Args& a) {
  const auto t0 = std::chrono::steady_clock::now();
  N4Options o = a.n4;
  ProgressReporter bar = ProgressReporter::to_stderr("n4", a.common.quiet);
  o.progress = [&bar, its = o.iterations, verbose = a.verbose](const N4Progress& p) {
    if (verbose) {
      std::printf("  level %d iteration %3d  convergence %.3e\n", p.level + 1, p.iteration, p.convergence);
      std::fflush(stdout);
    }
    double done = p.iteration, total = 0;
    for (size_t l = 0; l < its.size(); ++l) done += l < size_t(p.level) ? its[l] : 0, total += its[l];
    bar.update(done / total, "level " + std::to_string(p.level + 1) + "/" + std::to_string(its.size()));
  };

  NiftiHeaderInfo info;
  Image<float> in = read_image(a.input, "input", &info);
  const Geometry g = in.geometry(); // a copy: the input is freed before writing
  VX_CHECK(g.dims[3] == 1, InvalidArgument, "input ", a.input, " is 4D (", g.dims[3],
           " frames); N4 corrects one 2D or 3D image (run it on a mean or on each frame)");
  Image<uint8_t> mask;
  if (!a.mask.empty()) {
    Image<float> m = read_companion(a.mask, g, "--mask");
    mask = Image<uint8_t>(m.geometry(), no_init);
    for (int64_t p = 0; p < m.size(); ++p) mask.data()[p] = m.data()[p] != 0.0f ? 1 : 0;
  }
  Image<float> weight;
  if (!a.weight.empty()) weight = read_companion(a.weight, g, "--weight");
  const Vec3 sp = g.spacing();
  ImageView<const uint8_t> mv = mask.view();
  ImageView<const float> wv = weight.view();
  N4Result r;
  try {
    r = n4(in.view(), {sp[0], sp[1], sp[2]}, a.mask.empty() ? nullptr : &mv, a.weight.empty() ? nullptr : &wv, o,
           !a.bias_out.empty());
  } catch (...) {
    rethrow_with_context(a.input);
  }
  bar.finish();
  in = Image<float>(); // free the input before writing (its pages too: nothing reuses the buffer)
  release_cached_buffers();
  r.corrected.geometry() = g;
  NiftiWriteOptions w;
  w.dtype = a.common.dtype;
  w.meta = &info.meta;
  write_nifti(a.output, r.corrected, w);
  if (!a.bias_out.empty()) {
    r.bias.geometry() = g;
    NiftiMeta bias_meta = info.meta; // the input's grid and header; not its display range or intent
    bias_meta.cal_min = bias_meta.cal_max = 0;
    bias_meta.intent_code = 0;
    bias_meta.intent_name.clear();
    NiftiWriteOptions wb;
    wb.meta = &bias_meta;
    write_nifti(a.bias_out, r.bias, wb);
  }
  if (!a.common.quiet) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("n4 %s -> %s: fit on %lldx%lldx%lld (shrink %d), %lld voxels from %s; iterations", a.input.c_str(),
                a.output.c_str(), (long long)r.report.fit_dims[0], (long long)r.report.fit_dims[1],
                (long long)r.report.fit_dims[2], o.shrink, (long long)r.report.fit_voxels,
                r.report.otsu_mask ? "an Otsu mask" : "the mask");
    for (size_t l = 0; l < r.report.iterations.size(); ++l)
      std::printf("%s%d", l ? "x" : " ", r.report.iterations[l]);
    const auto& cp = r.report.control_points.back();
    std::printf(", final lattice %dx%dx%d, convergence %.2e; %.2f s %s", cp[0], cp[1], cp[2],
                r.report.final_convergence.back(), secs, threads_used().c_str());
    if (!a.bias_out.empty()) std::printf("; bias field -> %s", a.bias_out.c_str());
    std::printf("\n");
  }
}

} // namespace

void register_n4(CLI::App& app) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  auto a = std::make_shared<N4Args>();
  CLI::App* cmd = add_command(app, "n4", "N4 bias-field correction (ITK/ANTs N4BiasFieldCorrection)", R"(
Same algorithm and answer as ITK's N4BiasFieldCorrectionImageFilter, with the options and defaults of
ANTs' N4BiasFieldCorrection: ANTs -s S = --shrink S, -c [50x50x50x50,T] = --iterations 50x50x50x50
--convergence T, -b [D,3] = --spline-distance D --spline-order 3, -b [1x1x1] (mesh) = --control-points 4,
-t [0.15,0.01,200] = --fwhm 0.15 --wiener 0.01 --bins 200, -x M = --mask M, -w W = --weight W,
-o [OUT,BIAS] = -o OUT --bias-out BIAS. The bias is fitted on the image shrunk by S and evaluated at full
resolution from the B-spline control lattice; every voxel is divided by it. Without --mask the bias is
estimated inside an Otsu foreground mask. Voxels <= 0 are left out of the estimate (their log is
undefined) but corrected. See docs/n4.md.)");
  cmd->add_option("input", a->input, "Input image (2D or 3D .nii/.nii.gz, positive intensities)")->required();
  cmd->add_option("-o,--output", a->output, "Corrected image; written only when complete")->required();
  cmd->add_option("--mask", a->mask, "Estimate the bias inside this mask (non-zero voxels; same grid as the input)");
  cmd->add_option("--weight", a->weight,
                  "Confidence image (same grid): voxels <= 0 are left out, the others weight the B-spline fit");
  cmd->add_option("--bias-out", a->bias_out, "Also write the multiplicative bias field (input = corrected * bias)");
  N4Options& o = a->n4;
  cmd->add_option("--shrink", o.shrink, "Shrink factor for the fit (ANTs -s)")->capture_default_str()->check(number_check(1, 64, true));
  add_parsed(cmd, "--iterations", join(o.iterations, "x"),
             "Iterations per fitting level, joined by x; one entry per level (ANTs -c [...])",
             [&o](const std::string& s) { o.iterations = parse_x_list(s, "--iterations"); });
  cmd->add_option("--convergence", o.convergence,
                  "Stop a level when the coefficient of variation of the field update is <= T (0: run every iteration)")
      ->capture_default_str()
      ->check(number_check(0, kInf));
  auto* sd = cmd->add_option("--spline-distance", o.spline_distance,
                             "B-spline mesh element size in mm at the first level (ANTs -b [D]); 0: use --control-points")
                 ->capture_default_str()
                 ->check(number_check(0, kInf, false, true));
  auto* cpo = add_parsed(cmd, "--control-points", join(o.control_points, "x"),
                         "Control points per axis at the first level, N or NxNxN (ITK's default)",
                         [&o](const std::string& s) { o.control_points = parse_x_list(s, "--control-points"); });
  sd->excludes(cpo);
  cpo->excludes(sd);
  cmd->add_option("--spline-order", o.spline_order, "B-spline order of the bias field (1..3)")
      ->capture_default_str()
      ->check(number_check(1, 3, true));
  cmd->add_option("--bins", o.bins, "Histogram bins for the sharpening")->capture_default_str()->check(number_check(2, 100000, true));
  cmd->add_option("--fwhm", o.fwhm, "FWHM of the bias blur (log intensity)")
      ->capture_default_str()
      ->check(number_check(0, kInf, false, true));
  cmd->add_option("--wiener", o.wiener, "Wiener filter noise")->capture_default_str()->check(number_check(0, kInf));
  cmd->add_option("--otsu-bins", o.otsu_bins, "Histogram bins of the Otsu mask used without --mask (ITK default)")
      ->capture_default_str()
      ->check(number_check(2, 100000, true));
  cmd->add_flag("-v,--verbose", a->verbose, "Print the convergence measure after every iteration");
  add_common_options(cmd, a->common, "Data type of the corrected image");
  cmd->callback([a] {
    apply_threads(a->common.threads);
    check_nifti_output_path(a->output);
    if (!a->bias_out.empty()) check_nifti_output_path(a->bias_out);
    check_distinct_files({{"the input", a->input}, {"--mask", a->mask}, {"--weight", a->weight}},
                         {{"-o", a->output}, {"--bias-out", a->bias_out}});
    run(*a);
  });
}

} // namespace voxalign::cli
