// Shared pieces of the command-line program.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace voxalign::cli {

/// Register each command on the top-level app (one file per command).
void register_resample(CLI::App& app);
void register_n4(CLI::App& app);
void register_warp(CLI::App& app);
void register_register(CLI::App& app);
void register_realign(CLI::App& app);

/// Add --threads to a subcommand; call apply_threads() at the start of run().
void add_threads_option(CLI::App* cmd, int& threads);
void apply_threads(int threads);

} // namespace voxalign::cli
