// voxalign superres: super-resolution reconstruction of thick-slice stacks with joint motion estimation.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/output.hpp"
#include "voxalign/core/progress.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/superres/superres.hpp"
#include "voxalign/transform/affine_io.hpp"

namespace voxalign::cli {
namespace {

struct SuperresArgs {
  std::vector<std::string> stacks;
  std::string output, mask, transforms, residuals;
  SuperresOptions o;
  CommonArgs common;
};

/// One ITK text file per stack: one transform (no slice motion) or one per motion group, in order.
std::string stack_transforms_text(const std::vector<Mat4>& t) {
  std::ostringstream o;
  o << "#Insight Transform File V1.0\n";
  for (size_t g = 0; g < t.size(); ++g) {
    std::string one = itk_affine_text(t[g]);
    one = one.substr(one.find('\n') + 1); // drop the file header line
    one = one.substr(one.find('\n') + 1); // and "#Transform 0"
    o << "#Transform " << g << "\n" << one;
  }
  return o.str();
}

std::string transform_name(const std::string& dir, size_t k) {
  char b[32];
  std::snprintf(b, sizeof b, "stack%02zu.tfm", k + 1);
  return (std::filesystem::path(dir) / b).string();
}

std::string residual_name(const std::string& dir, size_t k) {
  char b[40];
  std::snprintf(b, sizeof b, "stack%02zu_residual.nii.gz", k + 1);
  return (std::filesystem::path(dir) / b).string();
}

/// --save-transforms / --save-residuals DIR: its parent exists and DIR is a directory if it exists.
void check_save_dir(const std::string& option, const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  const auto parent = std::filesystem::path(dir).parent_path();
  VX_CHECK(parent.empty() || std::filesystem::is_directory(parent, ec), InvalidArgument, option, " ", dir,
           ": its parent directory does not exist");
  VX_CHECK(!std::filesystem::exists(dir, ec) || std::filesystem::is_directory(dir, ec), InvalidArgument, option, " ",
           dir, ": exists and is not a directory");
}

void run(const SuperresArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Image<float>> stacks;
  std::vector<NiftiMeta> metas;
  for (size_t k = 0; k < a.stacks.size(); ++k) {
    NiftiHeaderInfo info;
    stacks.push_back(read_image(a.stacks[k], "STACK " + std::to_string(k + 1), &info));
    const Geometry& g = stacks.back().geometry();
    VX_CHECK(g.dims[3] == 1, InvalidArgument, "STACK ", a.stacks[k], " is 4D (", g.dims[3],
             " volumes): superres takes 3D stacks");
    metas.push_back(info.meta);
  }
  Image<float> mask;
  if (!a.mask.empty()) mask = read_mask(a.mask, "--mask");
  SuperresOptions o = a.o;
  o.residuals = !a.residuals.empty();
  ProgressReporter bar = ProgressReporter::to_stderr("superres", a.common.quiet);
  o.progress = [&bar](const SuperresProgress& p) { bar.update(p.fraction, p.stage); };
  SuperresResult r;
  try {
    r = superres(stacks, o, a.mask.empty() ? nullptr : &mask);
  } catch (...) {
    rethrow_with_context(a.stacks[0] + (a.stacks.size() > 1 ? " ..." : ""));
  }
  bar.finish();
  NiftiMeta meta = metas[0];
  meta.descrip = "voxalign superres";
  meta.slice_duration = 0;
  NiftiWriteOptions w;
  w.dtype = a.common.dtype;
  w.meta = &meta;
  write_nifti(a.output, r.image, w);
  if (!a.transforms.empty()) {
    create_output_directory(a.transforms);
    for (size_t k = 0; k < r.transforms.size(); ++k)
      write_text_file(transform_name(a.transforms, k), stack_transforms_text(r.transforms[k]));
  }
  if (!a.residuals.empty()) {
    create_output_directory(a.residuals);
    for (size_t k = 0; k < r.residuals.size(); ++k) {
      NiftiMeta rm = metas[k]; // the stack's own header: the residual is on its grid
      rm.descrip = "voxalign superres residual";
      rm.cal_min = rm.cal_max = 0; // the stack's display range does not fit its residual
      rm.intent_code = 0;
      rm.intent_name.clear();
      NiftiWriteOptions rw;
      rw.dtype = DataType::Float32;
      rw.meta = &rm;
      write_nifti(residual_name(a.residuals, k), r.residuals[k], rw);
    }
  }
  if (!a.common.quiet) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& d = r.image.geometry().dims;
    int outliers = 0;
    for (const auto& ws : r.slice_weights)
      for (double v : ws) outliers += v < 0.5;
    std::printf("superres %zu stacks -> %s: %lldx%lldx%lld at %.3g mm; residual RMS %.4g -> %.4g; %d CG iterations",
                stacks.size(), a.output.c_str(), (long long)d[0], (long long)d[1], (long long)d[2],
                r.image.geometry().spacing()[0], r.residual_rms.front(), r.residual_rms.back(), r.cg_iterations);
    if (a.o.slice_motion) std::printf("; %d outlier slices", outliers);
    std::printf("; %.2f s %s\n", secs, threads_used().c_str());
    if (!a.transforms.empty()) std::printf("transforms: %s/stack01.tfm ...\n", a.transforms.c_str());
    if (!a.residuals.empty()) std::printf("residuals: %s/stack01_residual.nii.gz ...\n", a.residuals.c_str());
  }
}

} // namespace

void register_superres(CLI::App& app) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  auto a = std::make_shared<SuperresArgs>();
  CLI::App* cmd = add_command(app, "superres",
                              "Super-resolution reconstruction of thick-slice stacks with motion estimation (SVR)", R"(
STACKs are 3D images of thick slices (any orientation; the slice axis is each stack's coarsest axis) of
one subject who may have moved between them (or, with --slice-motion, during them). Each stack is
modelled as y = D B W(T) x: x the high-resolution image, W a rigid motion T (linear interpolation), B a
Gaussian slice profile with FWHM = slice thickness, D the sampling on the stack's grid. Motions start
from a rigid registration of each stack to the first; then x (conjugate gradients on the normal equations
with --regularization times ||grad x||^2) and the motions (Gauss-Newton, exact derivatives) alternate for
--iterations rounds. The output grid covers the first stack's field of view along its axes at
--resolution. --save-transforms DIR writes DIR/stack01.tfm ...: ITK text, the output world -> stack world
pull-back (voxalign resample STACK --like OUTPUT -t DIR/stack01.tfm aligns a stack to the output); with slice
motion one transform per motion group in slice order (#Transform g). --save-residuals DIR writes
DIR/stack01_residual.nii.gz ...: each stack's residual y - D B W(T) x of the final reconstruction and
motions (per slice with --slice-motion), float32 on the stack's own grid and header; it shows where the
model fails (motion left, artefacts, outlier slices). See docs/superres.md.)");
  cmd->add_option("stacks", a->stacks, "Thick-slice stacks (3D NIfTI); the first is the reference")->required();
  cmd->add_option("-o,--output", a->output, "Reconstructed high-resolution image")->required();
  SuperresOptions& o = a->o;
  cmd->add_option("--resolution", o.resolution, "Output voxel size in mm (default: the stacks' smallest in-plane spacing)")
      ->check(number_check(0, 1e3, false, true));
  cmd->add_option("--mask", a->mask,
                  "Region to reconstruct (any grid, the first stack's world): data that touch it are used, the output is 0 outside");
  cmd->add_flag("--slice-motion", o.slice_motion, "One rigid motion per slice (or per --slice-groups group), with outlier rejection");
  cmd->add_option("--slice-groups", o.slice_groups,
                  "With --slice-motion: N interleaved groups (slice s in group s mod N), one motion each (0: one per slice)")
      ->capture_default_str()
      ->check(number_check(0, 1e6, true));
  cmd->add_option("--iterations", o.iterations, "Motion updates, each followed by a reconstruction (about 8 with --slice-motion)")
      ->capture_default_str()
      ->check(number_check(0, 100, true));
  cmd->add_option("--regularization", o.regularization, "Weight of the squared gradient of the output (smoothness)")
      ->capture_default_str()
      ->check(number_check(0, kInf));
  cmd->add_option("--cg-iterations", o.cg_iterations, "Conjugate-gradient iterations per reconstruction")
      ->capture_default_str()
      ->check(number_check(1, 10000, true));
  cmd->add_option("--gn-iterations", o.gn_iterations, "Gauss-Newton iterations per motion update")
      ->capture_default_str()
      ->check(number_check(1, 1000, true));
  cmd->add_flag("--no-outlier-rejection", [&o](int64_t n) { o.outlier_rejection = n == 0; },
                "With --slice-motion: keep every slice at full weight");
  cmd->add_option("--save-transforms", a->transforms, "Directory for one ITK transform file per stack (stack01.tfm ...)");
  cmd->add_option("--save-residuals", a->residuals,
                  "Directory for each stack's residual y - D B W(T) x on its grid (stack01_residual.nii.gz ..., float32)");
  add_common_options(cmd, a->common, "Data type of the reconstruction");
  cmd->callback([a] {
    apply_threads(a->common.threads);
    VX_CHECK(a->o.slice_groups == 0 || a->o.slice_motion, InvalidArgument, "--slice-groups needs --slice-motion");
    check_superres_options(a->o);
    check_nifti_output_path(a->output);
    check_save_dir("--save-transforms", a->transforms);
    check_save_dir("--save-residuals", a->residuals);
    std::vector<std::pair<std::string, std::string>> inputs{{"--mask", a->mask}}, outputs{{"-o", a->output}};
    for (size_t k = 0; k < a->stacks.size(); ++k) {
      inputs.push_back({"STACK " + std::to_string(k + 1), a->stacks[k]});
      if (!a->residuals.empty()) outputs.push_back({"--save-residuals", residual_name(a->residuals, k)});
    }
    check_distinct_files(inputs, outputs);
    run(*a);
  });
}

} // namespace voxalign::cli
