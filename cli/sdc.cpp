// voxalign sdc: susceptibility distortion correction from a blip-up/blip-down pair (topup's model).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/progress.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/sdc/sdc.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign::cli {
namespace {

struct SdcArgs {
  std::string up, down, output, out_up, out_down, fieldmap, displacement, displacement_down, mask, datain;
  std::string apply, apply_out, apply_pe, apply_transforms, report, save_motion;
  std::string pe_up, pe_down;
  double readout = 0, readout_down = 0, apply_readout = 0;
  SdcOptions sdc;
  CommonArgs common;
  bool verbose = false;
};

/// Phase encoding and readout time of one image: the options, else --datain, else its sidecar.
struct Acquisition {
  PhaseEncoding pe;
  double readout;
};

Acquisition acquisition(const std::string& image, const char* which, const std::string& pe_opt, const char* pe_name,
                        double readout_opt, const char* readout_name, const std::optional<AcquisitionRow>& datain,
                        const std::optional<PhaseEncoding>& implied) {
  const Sidecar side = read_sidecar(image);
  std::optional<PhaseEncoding> pe;
  std::optional<double> ro;
  if (!pe_opt.empty()) pe = parse_phase_encoding(pe_opt, pe_name);
  else if (datain) pe = datain->pe;
  else if (side.pe) pe = side.pe;
  else if (implied) pe = implied;
  if (readout_opt > 0) ro = readout_opt;
  else if (datain) ro = datain->readout;
  else if (side.readout) ro = side.readout;
  VX_CHECK(pe, InvalidArgument, "no phase-encoding direction for ", which, " ", image, ": give ", pe_name,
           " (i, j, k, i-, j-, k-), --datain, or a BIDS sidecar ", side.path.empty() ? "X.json" : side.path,
           " with PhaseEncodingDirection");
  VX_CHECK(ro, InvalidArgument, "no total readout time for ", which, " ", image, ": give ", readout_name,
           " (s), --datain, or a BIDS sidecar ", side.path.empty() ? "X.json" : side.path, " with TotalReadoutTime");
  return {*pe, *ro};
}

NiftiMeta plain_meta(const NiftiMeta& m, const char* descrip) {
  NiftiMeta o = m;
  o.cal_min = o.cal_max = 0;
  o.intent_code = 0;
  o.intent_name.clear();
  o.descrip = descrip;
  return o;
}

void run(const SdcArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  NiftiHeaderInfo iu, id;
  Image<float> up = read_image(a.up, "UP", &iu), down = read_image(a.down, "DOWN", &id);
  const Geometry g = up.geometry();
  const Geometry& gd = down.geometry();
  VX_CHECK(g.dims[0] == gd.dims[0] && g.dims[1] == gd.dims[1] && g.dims[2] == gd.dims[2], InvalidArgument, "DOWN ",
           a.down, " is not on UP's grid (", gd.dims[0], "x", gd.dims[1], "x", gd.dims[2], " voxels vs ", g.dims[0], "x",
           g.dims[1], "x", g.dims[2], ")");
  VX_CHECK(g.same_grid(gd), InvalidArgument, "DOWN ", a.down, " is not on UP's grid (same size, different voxel-to-world ",
           "matrix: max difference ", (g.affine - gd.affine).cwiseAbs().maxCoeff(), " mm)");

  std::optional<AcquisitionRow> row_up, row_down;
  if (!a.datain.empty()) {
    const std::vector<AcquisitionRow> rows = read_acquisition_parameters(a.datain);
    const int64_t tu = g.dims[3], td = gd.dims[3];
    VX_CHECK(rows.size() == 2 || int64_t(rows.size()) == tu + td, InvalidArgument, "--datain ", a.datain, " has ",
             rows.size(), " rows; give 2 (UP, DOWN) or one per volume (", tu + td, ": UP's then DOWN's)");
    const size_t first_down = rows.size() == 2 ? 1 : size_t(tu);
    for (size_t r = 0; r < rows.size(); ++r) {
      const AcquisitionRow& ref = rows[r < first_down ? 0 : first_down];
      VX_CHECK(rows[r].pe == ref.pe && rows[r].readout == ref.readout, InvalidArgument, "--datain ", a.datain, ": row ",
               r + 1, " differs from the other rows of ", r < first_down ? "UP" : "DOWN");
    }
    row_up = rows[0];
    row_down = rows[first_down];
  }
  const Acquisition au = acquisition(a.up, "UP", a.pe_up, "--pe-dir", a.readout, "--readout-time", row_up, std::nullopt);
  const PhaseEncoding opposite{au.pe.axis, -au.pe.sign};
  const Acquisition ad = acquisition(a.down, "DOWN", a.pe_down, "--pe-dir-down",
                                     a.readout_down > 0 ? a.readout_down : a.readout, "--readout-time", row_down,
                                     opposite);

  Image<uint8_t> mask;
  if (!a.mask.empty()) {
    Image<float> m = read_mask(a.mask, "--mask");
    const Geometry& gm = m.geometry();
    VX_CHECK(gm.dims[0] == g.dims[0] && gm.dims[1] == g.dims[1] && gm.dims[2] == g.dims[2] && gm.same_grid(g),
             InvalidArgument, "--mask ", a.mask, " is not on UP's grid; resample it first");
    mask = Image<uint8_t>(gm, no_init);
    for (int64_t p = 0; p < m.size(); ++p) mask.data()[p] = m.data()[p] != 0.0f ? 1 : 0;
  }
  Image<float> series;
  NiftiHeaderInfo is;
  Acquisition aa{};
  std::vector<Mat4> frame_transforms;
  if (!a.apply.empty()) {
    series = read_image(a.apply, "--apply", &is);
    const Geometry& gs = series.geometry();
    VX_CHECK(gs.dims[0] == g.dims[0] && gs.dims[1] == g.dims[1] && gs.dims[2] == g.dims[2] && gs.same_grid(g),
             InvalidArgument, "--apply ", a.apply, " is not on UP's grid");
    aa = acquisition(a.apply, "--apply", a.apply_pe, "--apply-pe-dir", a.apply_readout, "--apply-readout-time",
                     std::nullopt, au.pe);
    if (a.apply_readout <= 0 && !read_sidecar(a.apply).readout) aa.readout = au.readout;
    if (!a.apply_transforms.empty()) {
      frame_transforms = read_frame_transforms(a.apply_transforms);
      VX_CHECK(int64_t(frame_transforms.size()) == gs.dims[3], InvalidArgument, "--apply-transforms ",
               a.apply_transforms, " has ", frame_transforms.size(), " transforms for the ", gs.dims[3],
               " frames of --apply ", a.apply);
    }
    VX_CHECK(aa.pe.axis == au.pe.axis, InvalidArgument, "--apply ", a.apply, " is phase-encoded along ",
             phase_encoding_name(aa.pe), ", not along the pair's axis (", phase_encoding_name(au.pe), ")");
  }

  SdcOptions o = a.sdc;
  ProgressReporter bar = ProgressReporter::to_stderr("sdc", a.common.quiet);
  int total = 0;
  for (int it : o.iterations) total += it;
  o.progress = [&bar, &o, total, verbose = a.verbose](const SdcProgress& p) {
    if (verbose) {
      std::printf("  level %d iteration %2d  cost %.6g\n", p.level + 1, p.iteration, p.cost);
      std::fflush(stdout);
    }
    int done = p.iteration;
    for (int l = 0; l < p.level; ++l) done += o.iterations[size_t(l)];
    bar.update(total > 0 ? std::min(1.0, double(done) / total) : 1.0,
               "level " + std::to_string(p.level + 1) + "/" + std::to_string(o.iterations.size()));
  };
  const ImageView<const uint8_t> mv = mask.view();
  SdcResult r;
  try {
    r = sdc(up.view(), down.view(), g, au.pe, au.readout, ad.pe, ad.readout, a.mask.empty() ? nullptr : &mv, o);
  } catch (...) {
    rethrow_with_context(a.up + ", " + a.down);
  }
  bar.finish();
  Image<float> applied;
  if (!a.apply.empty()) {
    if (a.apply_transforms.empty()) {
      applied = sdc_apply(series.view(), r.field.view(), aa.pe, aa.readout);
    } else {
      Geometry g3f = g;
      g3f.dims[3] = 1;
      applied = sdc_apply_with_motion(series.view(), r.field.view(), g3f, aa.pe, aa.readout, frame_transforms);
    }
    applied.geometry() = series.geometry();
  }
  Geometry g3 = g;
  g3.dims[3] = 1;
  g3.ndim = std::min(g.ndim, 3);
  NiftiWriteOptions w;
  w.dtype = a.common.dtype;
  w.meta = &iu.meta;
  auto put = [&](const std::string& path, Image<float>& im, const NiftiWriteOptions& opts) {
    if (path.empty()) return;
    im.geometry() = g3;
    write_nifti(path, im, opts);
  };
  put(a.output, r.corrected, w);
  put(a.out_up, r.corrected_up, w);
  NiftiWriteOptions wd = w;
  wd.meta = &id.meta;
  put(a.out_down, r.corrected_down, wd);
  const NiftiMeta fmeta = plain_meta(iu.meta, "fieldmap (Hz, topup's sign)");
  NiftiWriteOptions wf;
  wf.meta = &fmeta;
  put(a.fieldmap, r.field, wf);
  if (!a.save_motion.empty()) write_itk_transform(a.save_motion, r.motion, "--save-motion");
  if (!a.displacement.empty()) write_displacement_field(a.displacement, sdc_displacement(r.field.view(), g3, au.pe, au.readout));
  if (!a.displacement_down.empty())
    write_displacement_field(a.displacement_down, sdc_displacement(r.field.view(), g3, ad.pe, ad.readout));
  if (!a.apply.empty()) {
    NiftiWriteOptions wa = w;
    wa.meta = &is.meta;
    write_nifti(a.apply_out, applied, wa);
  }
  if (!a.report.empty()) {
    SdcReportInput ri{up.view(), down.view(), a.up, a.down, au.pe, ad.pe, au.readout, ad.readout,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
    write_sdc_report(a.report, ri, r);
  }
  if (!a.common.quiet) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    float lo = 0, hi = 0;
    for (int64_t v = 0; v < r.field.size(); ++v) lo = std::min(lo, r.field.data()[v]), hi = std::max(hi, r.field.data()[v]);
    std::printf("sdc %s (%s, %.4g s) + %s (%s, %.4g s) -> %s: field %.1f..%.1f Hz (max shift %.2f voxels); iterations",
                a.up.c_str(), phase_encoding_name(au.pe).c_str(), au.readout, a.down.c_str(),
                phase_encoding_name(ad.pe).c_str(), ad.readout, a.output.c_str(), lo, hi,
                std::max(std::fabs(lo), std::fabs(hi)) * std::max(au.readout, ad.readout));
    for (size_t l = 0; l < r.report.levels.size(); ++l) std::printf("%s%d", l ? "," : " ", r.report.levels[l].iterations);
    if (o.motion) {
      const std::array<double, 6>& m = r.report.motion_parameters;
      std::printf("; motion %.2f mm, %.2f deg", std::sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2]),
                  std::sqrt(m[3] * m[3] + m[4] * m[4] + m[5] * m[5]) * 180.0 / M_PI);
    }
    std::printf("; %.2f s %s\n", secs, threads_used().c_str());
    if (!a.report.empty()) std::printf("report: %s/index.html\n", a.report.c_str());
    if (r.report.max_abs_jacobian_deficit > 0)
      std::printf("warning: the field folds the images (Jacobian below 0 by up to %.3f); raise --lambda\n",
                  r.report.max_abs_jacobian_deficit);
  }
}

} // namespace

void register_sdc(CLI::App& app) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  auto a = std::make_shared<SdcArgs>();
  CLI::App* cmd = add_command(app, "sdc", "Susceptibility distortion correction from a blip-up/blip-down pair (FSL topup)", R"(
UP and DOWN are EPI images (3D, or 4D: their volumes are averaged) acquired with opposite phase-encoding
directions. The field (Hz) is the cubic B-spline that makes them agree once each is pulled back along the
phase-encoding axis by +-(field x TotalReadoutTime) voxels and multiplied by the Jacobian of that pull-back
(topup's model), estimated by Gauss-Newton with the exact derivative over the levels of --warpres,
--subsamp, --fwhm, --miter and --lambda (one value per level each, as in topup's configuration files).
Phase encoding and readout time come from the options, else from topup's --datain file, else from the
BIDS sidecars beside the images (X.json: PhaseEncodingDirection, TotalReadoutTime); DOWN's direction
defaults to the opposite of UP's. DOWN's rigid motion relative to UP (the head moved between the two) is
estimated with the field (topup --estmov; --no-motion to assume none; --save-motion writes it as an ITK
transform). --fieldmap has topup --fout's sign: a positive field shifts the image
acquired with PE+ towards +PE. --displacement is UP's pull-back as an ITK displacement field (LPS mm), for
voxalign resample -t / antsApplyTransforms (no Jacobian modulation there). See docs/sdc.md.)");
  cmd->add_option("up", a->up, "Image acquired with the first phase-encoding direction (3D or 4D)")->required();
  cmd->add_option("down", a->down, "Image acquired with the opposite direction, on the same grid")->required();
  cmd->add_option("-o,--output", a->output, "Corrected image: the mean of the two corrected images")->required();
  cmd->add_option("--corrected-up", a->out_up, "Also write UP corrected (its volumes' mean)");
  cmd->add_option("--corrected-down", a->out_down, "Also write DOWN corrected (its volumes' mean)");
  cmd->add_option("--fieldmap", a->fieldmap, "Write the field in Hz on the input grid (topup --fout's sign)");
  cmd->add_option("--displacement", a->displacement,
                  "Write UP's correction as an ITK displacement field (X x Y x Z x 1 x 3, LPS mm)");
  cmd->add_option("--displacement-down", a->displacement_down, "Write DOWN's correction as an ITK displacement field");
  cmd->add_option("--pe-dir", a->pe_up, "UP's phase-encoding direction: i, j, k, i-, j-, k- (BIDS PhaseEncodingDirection)");
  cmd->add_option("--pe-dir-down", a->pe_down, "DOWN's phase-encoding direction (default: the opposite of UP's)");
  cmd->add_option("--readout-time", a->readout, "Total readout time in s (BIDS TotalReadoutTime), both images")
      ->check(number_check(0, kInf, false, true));
  cmd->add_option("--readout-time-down", a->readout_down, "DOWN's total readout time in s when it differs")
      ->check(number_check(0, kInf, false, true));
  cmd->add_option("--datain", a->datain, "FSL topup acquisition parameters: rows \"0 1 0 0.05\" (UP), \"0 -1 0 0.05\" (DOWN)");
  cmd->add_option("--report", a->report,
                  "Directory for an HTML report: UP/DOWN overlays before and after, the field (index.html, PNGs)");
  cmd->add_option("--mask", a->mask, "Fit the field to the voxels of this mask only (same grid)");
  cmd->add_option("--apply", a->apply, "Also correct this series (3D/4D, on the same grid, one of the two directions)");
  cmd->add_option("-O,--apply-output", a->apply_out, "The corrected --apply series");
  cmd->add_option("--apply-transforms", a->apply_transforms,
                  "realign --save-transforms of the --apply series: motion and distortion in one interpolation");
  cmd->add_option("--apply-pe-dir", a->apply_pe, "--apply's phase-encoding direction (default: its sidecar, else UP's)");
  cmd->add_option("--apply-readout-time", a->apply_readout, "--apply's total readout time (default: its sidecar, else UP's)")
      ->check(number_check(0, kInf, false, true));
  SdcOptions& o = a->sdc;
  auto list = [&](const char* name, auto& field, const char* help, double lo, double hi, bool integer, bool lo_open) {
    add_parsed(cmd, name, join(field, ","), help, [&field, name, lo, hi, integer, lo_open](const std::string& s) {
      const std::vector<double> v = parse_number_list(s, name, lo, hi, integer, lo_open);
      field.assign(v.begin(), v.end());
    });
  };
  list("--warpres", o.warp_res, "Control-point spacing of the field in mm, per level (topup --warpres)", 0, 1e4, false, true);
  list("--subsamp", o.subsample, "Subsampling factor of the images per level (topup --subsamp)", 1, 16, true, false);
  list("--fwhm", o.fwhm, "Gaussian smoothing of the images in mm per level (topup --fwhm)", 0, 1e3, false, false);
  list("--miter", o.iterations, "Gauss-Newton iterations per level (topup --miter)", 0, 1000, true, false);
  list("--lambda", o.lambda, "Weight of the field's bending energy per level (docs/sdc.md)", 0, 1e12, false, false);
  cmd->add_flag("--no-align", [&o](int64_t n) { o.align_volumes = n == 0; },
                "4D UP/DOWN: average their volumes as they are, without aligning them first");
  cmd->add_option("--tolerance", o.tolerance,
                  "End a level when an iteration lowers the cost by less than this fraction (0: run every --miter)")
      ->capture_default_str()
      ->check(number_check(0, 1));
  cmd->add_option("--cg-iterations", o.cg_iterations, "Conjugate-gradient iterations per Gauss-Newton step")
      ->capture_default_str()
      ->check(number_check(1, 10000, true));
  CLI::Option* no_motion = cmd->add_flag("--no-motion", [&o](int64_t n) { o.motion = n == 0; },
                                         "Assume no motion between UP and DOWN (topup --estmov=0)");
  cmd->add_flag("--motion", [&o](int64_t n) { o.motion = n > 0 || o.motion; },
                "Estimate a rigid motion of DOWN relative to UP together with the field (the default; topup "
                "--estmov=1); the corrected DOWN is then on UP's frame")
      ->excludes(no_motion);
  cmd->add_option("--save-motion", a->save_motion,
                  "Write DOWN's motion relative to UP as an ITK/ANTs transform (.txt/.tfm ITK text, .mat ANTs; "
                  "resample DOWN -t it lands on UP)");
  cmd->add_flag("-v,--verbose", a->verbose, "Print the cost after every Gauss-Newton iteration");
  add_common_options(cmd, a->common, "Data type of the corrected images");
  cmd->callback([a] {
    apply_threads(a->common.threads);
    VX_CHECK(a->apply.empty() == a->apply_out.empty(), InvalidArgument, "--apply and -O/--apply-output go together");
    VX_CHECK(a->apply_transforms.empty() || !a->apply.empty(), InvalidArgument, "--apply-transforms needs --apply");
    check_sdc_options(a->sdc);
    VX_CHECK(a->save_motion.empty() || a->sdc.motion, InvalidArgument, "--save-motion needs the motion estimate (drop --no-motion)");
    if (!a->save_motion.empty()) check_itk_transform_name(a->save_motion, "--save-motion");
    for (const std::string* p : {&a->output, &a->out_up, &a->out_down, &a->fieldmap, &a->displacement,
                                 &a->displacement_down, &a->apply_out})
      if (!p->empty()) check_nifti_output_path(*p);
    check_report_dir(a->report);
    std::vector<std::pair<std::string, std::string>> outputs{{"-o", a->output},
                                                             {"--corrected-up", a->out_up},
                                                             {"--corrected-down", a->out_down},
                                                             {"--fieldmap", a->fieldmap},
                                                             {"--displacement", a->displacement},
                                                             {"--displacement-down", a->displacement_down},
                                                             {"-O", a->apply_out},
                                                             {"--save-motion", a->save_motion}};
    if (!a->report.empty())
      for (const char* f : {"index.html", "overlay_before.png", "overlay_after.png", "fieldmap.png"})
        outputs.push_back({"--report (" + std::string(f) + ")", a->report + "/" + f});
    check_distinct_files({{"UP", a->up}, {"DOWN", a->down}, {"--mask", a->mask}, {"--apply", a->apply}, {"--datain", a->datain},
                          {"--apply-transforms", a->apply_transforms}},
                         outputs);
    run(*a);
  });
}

} // namespace voxalign::cli
