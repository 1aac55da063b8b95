// Shared pieces of the command-line program.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "voxalign/image/image.hpp"
#include "voxalign/image/nifti.hpp"

namespace voxalign::cli {

/// Register each command on the top-level app (one file per command).
void register_resample(CLI::App& app);
void register_n4(CLI::App& app);
void register_warp(CLI::App& app);
void register_register(CLI::App& app);
void register_realign(CLI::App& app);

/// Read a NIfTI image as float; errors get "reading WHAT: " in front. `info` receives its header.
voxalign::Image<float> read_image(const std::string& path, const std::string& what,
                                  voxalign::NiftiHeaderInfo* info = nullptr);

/// Refuse (InvalidArgument) an output file whose directory does not exist; "" is accepted (no output).
void check_output_dir(const std::string& path);

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

/// Add --threads to a subcommand; call apply_threads() at the start of run().
void add_threads_option(CLI::App* cmd, int& threads);
void apply_threads(int threads);
/// "on N threads (SOURCE)" for a command's summary line: SOURCE is --threads, the environment
/// variable that set the count, or "all cores" (voxalign::thread_count()).
std::string threads_used();

} // namespace voxalign::cli
