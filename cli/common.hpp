// Shared pieces of the command-line program.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

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

/// Add --threads to a subcommand; call apply_threads() at the start of run().
void add_threads_option(CLI::App* cmd, int& threads);
void apply_threads(int threads);

} // namespace voxalign::cli
