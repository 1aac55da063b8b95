// Shared pieces of the command-line program: the options every command has, typed option helpers
// (enums by their NameTable, values parsed once when the command line is read), and file checks.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "voxalign/core/names.hpp"
#include "voxalign/image/image.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/sdc/sdc.hpp"

namespace voxalign::cli {

/// Register each command on the top-level app (one file per command).
void register_resample(CLI::App& app);
void register_n4(CLI::App& app);
void register_warp(CLI::App& app);
void register_register(CLI::App& app);
void register_realign(CLI::App& app);
void register_sdc(CLI::App& app);
void register_superres(CLI::App& app);
/// The hidden commands help-markdown and help-json (cli/reference.cpp): the reference of `app`'s commands.
void register_reference(CLI::App& app);

/// Add command `name` to `app`: `about` is its one-line description, `footer` the closing paragraphs of
/// its --help (a raw string; its first new line is dropped).
CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& about, const std::string& footer);

/// What every command takes: the output data type, -q and --threads.
struct CommonArgs {
  DataType dtype = DataType::Float32;
  bool quiet = false;
  int threads = 0;
};
/// Add --dtype (described by `dtype_help`), -q/--quiet and --threads; the command's callback calls
/// apply_threads(c.threads) first.
void add_common_options(CLI::App* cmd, CommonArgs& c, const std::string& dtype_help = "Output data type");

/// An enum option: any case of a name in `table`; anything else is a bad command line (exit 2):
/// "--mode: unknown boundary mode 'x' (choose from itk, grid-constant, ...)". The default shown is
/// `field`'s value now (the options struct's default).
template <class T>
CLI::Option* add_choice(CLI::App* cmd, const std::string& name, T& field, const NameTable<T>& table,
                        const std::string& help) {
  CLI::Option* o = cmd->add_option_function<std::string>(
      name, [&field, &table](const std::string& s) { field = table.parse(s); }, help);
  o->check(CLI::Validator([&table](std::string& s) { return table.find(s) ? std::string() : table.unknown(s); }, ""));
  o->type_name(table.choices("|"));
  o->default_str(table.name(field));
  return o;
}

/// An option whose text `apply` parses into the options struct when the command line is read; an
/// InvalidArgument it throws (naming the option) is a bad command line (exit 2). `default_text`
/// is the struct's default as the option would spell it (help, help-json).
CLI::Option* add_parsed(CLI::App* cmd, const std::string& name, const std::string& default_text, const std::string& help,
                        std::function<void(const std::string&)> apply);

/// "4,2,1" from {4, 2, 1} (the defaults of list options).
template <class T> std::string join(const std::vector<T>& v, const char* sep) {
  std::ostringstream s;
  for (size_t i = 0; i < v.size(); ++i) s << (i ? sep : "") << v[i];
  return s.str();
}

/// Read a NIfTI image as float (or double); errors get "reading WHAT: " in front. `info` receives its header.
template <class T = float>
voxalign::Image<T> read_image(const std::string& path, const std::string& what, voxalign::NiftiHeaderInfo* info = nullptr);

/// The grid of --like REF and the header of an output whose values come from `content` on it.
struct LikeGrid {
  Geometry grid;
  NiftiMeta meta;
};
LikeGrid like_grid(const std::string& path, const NiftiMeta& content);

/// Refuse (InvalidArgument) an output file whose directory does not exist; "" is accepted (no output).
void check_output_dir(const std::string& path);
/// Refuse (InvalidArgument) a --report directory whose parent does not exist or that is a file; "" is accepted.
void check_report_dir(const std::string& dir);

/// The one check of every numeric command-line option: the text is a number (an integer when
/// `integer`), finite, and within [lo, hi] (lo itself excluded when `lo_open`). An empty value,
/// "nan", "inf", 1e400 or a trailing comma never pass. The message names the option (CLI11 puts
/// "--name: " in front) and what is wrong.
CLI::Validator number_check(double lo, double hi, bool integer = false, bool lo_open = false);

/// A comma-separated list of numbers (--levels 4,2,1), each checked as number_check() does;
/// an empty item (a trailing or doubled comma) is refused. `what` names the option.
std::vector<double> parse_number_list(const std::string& text, const char* what, double lo, double hi, bool integer,
                                      bool lo_open = false);

/// A mask (or weight) image given with option `what`: 2D or 3D (a 4D file with one frame counts as
/// 3D); a 4D mask with several frames is refused, by every command alike.
voxalign::Image<float> read_mask(const std::string& path, const std::string& what);

/// Refuse to run when an output would overwrite an input, or two outputs name the same file
/// (compared after resolving ".", "..", symbolic links and hard links). Each entry is (option, path);
/// empty paths are skipped. The message names both options and the file.
void check_distinct_files(const std::vector<std::pair<std::string, std::string>>& inputs,
                          const std::vector<std::pair<std::string, std::string>>& outputs);

void apply_threads(int threads);
/// "on N threads (SOURCE)" for a command's summary line: SOURCE is --threads, the environment
/// variable that set the count, or "all cores" (voxalign::thread_count()).
std::string threads_used();

/// The nearest of `names` to `word` (edit distance at most 2, or a third of its length), or "".
std::string nearest_name(const std::string& word, const std::vector<std::string>& names);

/// What a BIDS sidecar (X.json beside X.nii[.gz]) says about an EPI's acquisition, when it exists.
struct Sidecar {
  std::string path; ///< "" when the image's name has no .nii/.nii.gz extension
  std::optional<voxalign::PhaseEncoding> pe;
  std::optional<double> readout;
};
/// PhaseEncodingDirection and TotalReadoutTime of the sidecar beside `image` (sdc, realign --fieldmap);
/// InvalidArgument naming the sidecar for a bad value.
Sidecar read_sidecar(const std::string& image);

} // namespace voxalign::cli
