// voxalign realign: 4D motion correction with SPM, FSL and BIDS outputs and an HTML report.
#include <strings.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <filesystem>
#include <string>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/progress.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/realign/realign.hpp"
#include "voxalign/report/report.hpp"
#include "voxalign/sdc/sdc.hpp"
#include "voxalign/spline/modes.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign::cli {
namespace {

struct RealignArgs {
  std::string input, output, rp, par, confounds, transforms, mean, report, mask;
  std::string fieldmap, pe_dir; ///< --fieldmap (Hz) and the series' phase encoding
  double readout = 0;
  RealignOptions realign;
  CommonArgs common;
  bool estimate_only = false;
  bool dtype_given = false; ///< --dtype given (else the input's type)
};

/// The JSON sidecar written beside --confounds X.tsv ("" without --confounds).
std::string confounds_json(const std::string& tsv) {
  if (tsv.empty()) return "";
  const auto dot = tsv.rfind(".tsv");
  return (dot != std::string::npos ? tsv.substr(0, dot) : tsv) + ".json";
}

/// The output type: --dtype, else the input's (SPM and MCFLIRT keep it), float32 for a scaled input.
DataType output_dtype(const RealignArgs& a, const NiftiHeaderInfo& info) {
  if (a.dtype_given) return a.common.dtype;
  return info.scl_slope == 1.0 && info.scl_inter == 0.0 ? info.dtype : DataType::Float32;
}

void run(const RealignArgs& a) {
  VX_CHECK(a.estimate_only || !a.output.empty(), InvalidArgument, "give -o OUT4D, or --estimate-only");
  const RealignOptions& o = a.realign;
  // The series is read a frame at a time, each sweep in order (realign's FrameSource), never whole.
  std::unique_ptr<NiftiFrameReader> reader;
  try {
    reader = std::make_unique<NiftiFrameReader>(a.input, true); // a .nii.gz decompressed once, sweeps 2.. from the spool
  } catch (...) {
    rethrow_with_context("reading input");
  }
  const NiftiHeaderInfo info = reader->info();
  const std::function<void(int64_t, float*)> read_frame = [&](int64_t t, float* dst) {
    try {
      reader->read(t, dst);
    } catch (...) {
      rethrow_with_context("reading input");
    }
  };
  const Geometry g = info.geometry;
  FrameSource source{g, read_frame};
  Image<float> mask;
  if (!a.mask.empty()) mask = read_mask(a.mask, "--mask");
  const bool need_mean = !a.mean.empty() || !a.report.empty();
  // --fieldmap: every frame resliced through its motion and the field's distortion at once (SdcOneShot,
  // as sdc --apply-transforms), at --write-degree with the plain reslicing's zero outside.
  std::unique_ptr<SdcOneShot> one_shot;
  FrameReslicer reslicer;
  if (!a.fieldmap.empty()) {
    Geometry gf3 = g;
    gf3.dims[3] = 1;
    gf3.ndim = 3;
    const Image<float> field = read_image(a.fieldmap, "--fieldmap");
    const Geometry& gf = field.geometry();
    VX_CHECK(gf.dims[3] == 1 && gf.dims[0] == g.dims[0] && gf.dims[1] == g.dims[1] && gf.dims[2] == g.dims[2] &&
                 gf.same_grid(gf3),
             InvalidArgument, "--fieldmap ", a.fieldmap, " is not a 3D image on the series' grid; resample it first");
    const Sidecar side = read_sidecar(a.input);
    std::optional<PhaseEncoding> pe;
    if (!a.pe_dir.empty()) pe = parse_phase_encoding(a.pe_dir, "--pe-dir");
    else pe = side.pe;
    const double ro = a.readout > 0 ? a.readout : side.readout.value_or(0.0);
    VX_CHECK(pe, InvalidArgument, "--fieldmap: no phase-encoding direction for ", a.input, ": give --pe-dir (i, j, k, i-, j-, k-) or a BIDS sidecar ",
             side.path.empty() ? "X.json" : side.path, " with PhaseEncodingDirection");
    VX_CHECK(ro > 0, InvalidArgument, "--fieldmap: no total readout time for ", a.input, ": give --readout-time (s) or a BIDS sidecar ",
             side.path.empty() ? "X.json" : side.path, " with TotalReadoutTime");
    ResampleOptions ro_opts;
    ro_opts.order = o.write_degree;
    ro_opts.mode = Mode::GridConstant;
    one_shot = std::make_unique<SdcOneShot>(field.view(), gf3, *pe, ro, ro_opts);
    reslicer = [&one_shot](ImageView<const float> in, const Mat4& m, ImageView<float> out) { one_shot->frame(in, m, out); };
  }
  // DVARS (--confounds) is computed on the realigned series, as fMRIPrep does on the motion-corrected BOLD,
  // from the brain voxels' time series alone (the series is never held): with --mask they are kept as the
  // frames are resliced; without, the automatic mask needs the resliced series' mean, so the frames are
  // resliced once more to keep them.
  const bool dvars = !a.confounds.empty();
  const bool dvars_again = dvars && !mask.size();
  // progress in frames: every pass of the estimation, then the reslicing
  ProgressReporter bar = ProgressReporter::to_stderr("realign", a.common.quiet);
  const double nt = double(g.dims[3]);
  int passes = 1;
  const auto frames = [&] { return passes * nt + (!a.estimate_only || dvars || need_mean ? nt : 0) + (dvars_again ? nt : 0); };
  const auto t0 = std::chrono::steady_clock::now();
  RealignResult r;
  try {
    r = realign(source, o, mask.size() ? &mask : nullptr, [&](int done, int, int pass, int np) {
      passes = np;
      bar.update((pass * nt + done) / frames(), "pass " + std::to_string(pass + 1) + "/" + std::to_string(np));
    });
  } catch (...) {
    rethrow_with_context("realigning " + a.input);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Reslice (frames in parallel), each frame written as it comes, and the means.
  Geometry g3 = g;
  g3.dims[3] = 1;
  g3.ndim = 3;
  const int64_t n = g.frame_size(), T = g.dims[3];
  NiftiWriteOptions w;
  w.dtype = output_dtype(a, info);
  w.meta = &info.meta;
  Image<float> mean_after, mean_before(g3, 0.0f);
  std::vector<int64_t> dvox; // DVARS: the brain voxels, their time series (voxel-major), the frames' sums
  std::vector<float> dx;
  std::vector<double> dsum;
  const auto keep_dvars = [&](int64_t t, const float* f) {
    const int64_t V = int64_t(dvox.size());
    for (int64_t v = 0; v < V; ++v) dx[size_t(v * T + t)] = f[dvox[size_t(v)]];
  };
  if (dvars && mask.size()) {
    VX_CHECK(mask.geometry().frame_size() == n, InvalidArgument, "--mask is not on the series' grid");
    dvox = dvars_voxels(mask, false);
    dx.resize(dvox.size() * size_t(T));
  } else if (dvars) {
    dsum.assign(size_t(n), 0.0);
  }
  std::unique_ptr<NiftiWriter> writer;
  if (!a.estimate_only) writer = std::make_unique<NiftiWriter>(a.output, g, w);
  if (writer || dvars || need_mean) {
    FrameSink sink;
    if (writer || dvars)
      sink = [&](int64_t t, const float* f) { // frames in order: the sums are compute_dvars' own
        if (writer) writer->append(f, n);
        if (!dvox.empty()) keep_dvars(t, f);
        if (!dsum.empty())
          for (int64_t q = 0; q < n; ++q) dsum[size_t(q)] += f[q];
      };
    if (!a.report.empty()) // the mean before realignment, from the frames as the sweep reads them (in order)
      source.read = [&](int64_t t, float* dst) {
        read_frame(t, dst);
        for (int64_t q = 0; q < n; ++q) mean_before.data()[q] += dst[q] / float(T);
      };
    reslice_series(source, r.matrices, o.write_degree, sink, need_mean ? &mean_after : nullptr,
                   [&](int done, int) { bar.update((passes * nt + done) / frames(), "reslice"); }, reslicer);
  }
  if (dvars_again) {
    Image<float> mean(g3, no_init);
    for (int64_t q = 0; q < n; ++q) mean.data()[q] = float(dsum[size_t(q)] / double(T));
    dsum = {};
    dvox = dvars_voxels(dvars_auto_mask(mean), true);
    dx.resize(dvox.size() * size_t(T));
    source.read = read_frame;
    reslice_series(source, r.matrices, o.write_degree, keep_dvars, nullptr,
                   [&](int done, int) { bar.update(((passes + 1) * nt + done) / frames(), "dvars"); }, reslicer);
  }
  bar.finish();
  if (writer) writer->finish(); // committed with the other outputs (cli/main.cpp's transaction)
  reader.reset();
  if (dvars) {
    const Dvars dv = dvars_of_masked(dx, int64_t(dvox.size()), T);
    r.dvars = dv.dvars, r.std_dvars = dv.std_dvars;
    dx = {};
  }
  if (!a.rp.empty()) write_text_file(a.rp, spm_rp_text(r));
  if (!a.par.empty()) write_text_file(a.par, fsl_par_text(r));
  if (!a.confounds.empty()) {
    write_text_file(a.confounds, bids_confounds_tsv(r));
    write_text_file(confounds_json(a.confounds), bids_confounds_json());
  }
  if (!a.transforms.empty()) write_text_file(a.transforms, itk_transforms_text(r));
  if (!a.mean.empty()) write_nifti(a.mean, mean_after, w);
  if (!a.report.empty()) write_realign_report(a.report, a.input, r, mean_before, mean_after, secs);
  if (!a.common.quiet) {
    double fdm = 0, fdx = 0;
    for (size_t t = 1; t < r.fd.size(); ++t) fdm += r.fd[t] / double(r.fd.size() - 1), fdx = std::max(fdx, r.fd[t]);
    std::printf("realigned %s: %lld frames of %lldx%lldx%lld to %s in %.2f s %s; mean FD %.4f mm, max FD %.4f mm\n",
                a.input.c_str(), (long long)T, (long long)g.dims[0], (long long)g.dims[1], (long long)g.dims[2],
                o.to_mean ? "the mean" : ("frame " + std::to_string(o.ref_frame)).c_str(), secs, threads_used().c_str(), fdm,
                fdx);
    if (!a.estimate_only) std::printf("wrote %s\n", a.output.c_str());
    if (!a.report.empty()) std::printf("report: %s/index.html\n", a.report.c_str());
  }
}

} // namespace

void register_realign(CLI::App& app) {
  auto a = std::make_shared<RealignArgs>();
  CLI::App* cmd = add_command(app, "realign", "4D motion correction (SPM-style realignment) with SPM/FSL/BIDS outputs", R"(
Estimates a rigid transform per frame of IN4D to a reference -- the mean of the series (SPM's two passes:
to the first frame, then to the mean of the aligned frames; default), the first frame, or frame N -- by
Gauss-Newton on B-spline interpolated images (exact derivatives) smoothed by --fwhm, with the reference
sampled every --sep mm (SPM's defaults: 4 mm, 5 mm, degree 2, quality 0.9), each frame starting from its
neighbour's estimate. Writes the series resliced on the reference grid (--write-degree, SPM's 4) unless
--estimate-only. Parameter files: --rp (SPM rp_*.txt: tx ty tz mm, pitch roll yaw rad, relative to frame 0),
--par (FSL MCFLIRT: rx ry rz rad, tx ty tz mm), --confounds (BIDS TSV + JSON sidecar: trans_x..rot_z,
with _derivative1, _power2, _derivative1_power2 as fMRIPrep, framewise_displacement (Power, 50 mm), rmsd
(Jenkinson, relative, 80 mm), dvars and std_dvars (nipype's, on the realigned series, in --mask or an
automatic mask of its mean)), --save-transforms (one ITK transform per frame, reference -> frame, LPS,
as fMRIPrep's desc-hmc_xfm.txt). See docs/realign.md.)");
  cmd->add_option("input", a->input, "4D image (.nii/.nii.gz)")->required();
  cmd->add_option("-o,--output", a->output, "Realigned 4D series on the reference grid");
  RealignOptions& o = a->realign;
  add_parsed(cmd, "--ref", o.to_mean ? "mean" : "first", "Reference: mean (two passes), first, or a frame number (0-based)",
             [&o](const std::string& s) {
               char* end = nullptr;
               const long v = std::strtol(s.c_str(), &end, 10);
               const bool number = !s.empty() && end && *end == '\0' && v >= 0 && v <= 1000000000L;
               VX_CHECK(number || strcasecmp(s.c_str(), "mean") == 0 || strcasecmp(s.c_str(), "first") == 0,
                        InvalidArgument, "--ref: '", s, "' is not first, mean or a frame number");
               o.to_mean = strcasecmp(s.c_str(), "mean") == 0;
               o.ref_frame = number ? int(v) : 0;
             });
  cmd->add_flag("--estimate-only", a->estimate_only, "Estimate (and write the parameter files, mean, report) without reslicing the series");
  cmd->add_option("--rp", a->rp, "SPM realignment parameters (rp_*.txt)");
  cmd->add_option("--par", a->par, "FSL MCFLIRT parameters (.par)");
  cmd->add_option("--confounds", a->confounds, "BIDS confounds TSV (a .json sidecar is written beside it)");
  cmd->add_option("--save-transforms", a->transforms, "ITK transform file with one transform per frame");
  cmd->add_option("--mean", a->mean, "Mean of the realigned frames");
  cmd->add_option("--report", a->report, "Directory for the HTML report (index.html, plots, slices)");
  cmd->add_option("--mask", a->mask, "Mask or weight image on the series' 3D grid (non-zero = use)");
  cmd->add_option("--fieldmap", a->fieldmap,
                  "Field in Hz on the series' grid (sdc --fieldmap, topup --fout): the series is resliced with motion and "
                  "distortion corrected in one interpolation (fMRIPrep's one-shot)");
  cmd->add_option("--pe-dir", a->pe_dir,
                  "With --fieldmap: the series' phase-encoding direction, i, j, k, i-, j-, k- (default: its BIDS sidecar)");
  cmd->add_option("--readout-time", a->readout,
                  "With --fieldmap: the series' total readout time in s (default: its BIDS sidecar)")
      ->check(number_check(0, std::numeric_limits<double>::infinity(), false, true));
  constexpr double kInf = std::numeric_limits<double>::infinity();
  cmd->add_option("--sep", o.sep, "Sampling separation of the reference (mm)")
      ->capture_default_str()
      ->check(number_check(0, kInf, false, true));
  cmd->add_option("--fwhm", o.fwhm, "Gaussian smoothing before estimation (mm; at most the image's size)")
      ->capture_default_str()
      ->check(number_check(0, kInf));
  cmd->add_option("--quality", o.quality, "Fraction of the reference's gradient energy kept in the samples (0..1]")
      ->capture_default_str()
      ->check(number_check(0, 1, false, true));
  cmd->add_option("--degree", o.degree, "B-spline degree during estimation")->capture_default_str()->check(number_check(1, 5, true));
  cmd->add_option("--write-degree", o.write_degree, "B-spline degree of the resliced series and mean")
      ->capture_default_str()
      ->check(number_check(0, 7, true));
  add_common_options(cmd, a->common,
                     "Output data type of the series and the mean (default: the input's; float32 for a scaled input)");
  cmd->callback([a, cmd] {
    a->dtype_given = cmd->count("--dtype") > 0;
    apply_threads(a->common.threads);
    if (!a->output.empty()) check_nifti_output_path(a->output);
    if (!a->mean.empty()) check_nifti_output_path(a->mean);
    for (const auto* f : {&a->rp, &a->par, &a->confounds, &a->transforms}) check_output_dir(*f);
    check_report_dir(a->report);
    std::vector<std::pair<std::string, std::string>> outputs{
        {"-o", a->output},           {"--mean", a->mean},      {"--rp", a->rp}, {"--par", a->par},
        {"--confounds", a->confounds}, {"--confounds (its .json sidecar)", confounds_json(a->confounds)},
        {"--save-transforms", a->transforms}};
    if (!a->report.empty())
      for (const char* f : {"index.html", "translation.svg", "rotation.svg", "fd.svg", "mean_before.png", "mean_after.png"})
        outputs.emplace_back("--report", a->report + "/" + f);
    VX_CHECK(!a->fieldmap.empty() || (a->pe_dir.empty() && a->readout == 0), InvalidArgument,
             "--pe-dir and --readout-time go with --fieldmap");
    if (!a->pe_dir.empty()) (void)parse_phase_encoding(a->pe_dir, "--pe-dir");
    check_distinct_files({{"the input", a->input}, {"--mask", a->mask}, {"--fieldmap", a->fieldmap}}, outputs);
    run(*a);
  });
}

} // namespace voxalign::cli
