// voxalign: one program, one command per file under cli/.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/output.hpp"

namespace {

/// A misspelt command or long option: "unknown command 'regster'; did you mean 'register'?" (""
/// when the command line names only known ones, or the mistake is too far from any name to guess;
/// CLI11 then reports it).
std::string misspelling(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return "";
  const std::string word = argv[1];
  std::vector<std::string> commands;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); }))
    commands.push_back(s->get_name());
  const CLI::App* cmd = nullptr;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; }))
    if (s->get_name() == word) cmd = s;
  if (!cmd) {
    const std::string near = voxalign::cli::nearest_name(word, commands);
    std::string all;
    for (const auto& c : commands) all += (all.empty() ? "" : ", ") + c;
    return "unknown command '" + word + "'" + (near.empty() ? " (choose from " + all + ")" : "; did you mean '" + near + "'?");
  }
  std::vector<std::string> longs;
  for (const CLI::Option* o : cmd->get_options())
    for (const auto& n : o->get_lnames()) longs.push_back("--" + n);
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break; // positionals follow
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) continue;
    const std::string name = arg.substr(0, arg.find('='));
    if (cmd->get_option_no_throw(name)) continue;
    const std::string near = voxalign::cli::nearest_name(name, longs);
    if (!near.empty()) return "unknown option '" + name + "'; did you mean '" + near + "'?";
  }
  return "";
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"voxalign: fast, exact image registration and correction for medical imaging"};
  app.set_version_flag("--version", "voxalign 0.1.0");
  app.require_subcommand(1);
  voxalign::cli::register_resample(app);
  voxalign::cli::register_n4(app);
  voxalign::cli::register_warp(app);
  voxalign::cli::register_register(app);
  voxalign::cli::register_realign(app);
  voxalign::cli::register_sdc(app);
  voxalign::cli::register_superres(app);
  voxalign::cli::register_reference(app);
  if (const std::string m = misspelling(app, argc, argv); !m.empty()) {
    std::fprintf(stderr, "voxalign: error: %s (see voxalign --help)\n", m.c_str());
    return 2;
  }
  // All or nothing: every output goes to a temporary name and is moved into place only when the
  // whole command succeeded; a failure or SIGINT/SIGTERM removes the temporaries (and a report
  // directory the command created). See docs/conventions.md, "Failures and bad input".
  voxalign::install_output_signal_handlers();
  try {
    voxalign::OutputTransaction outputs;
    app.parse(argc, argv);
    outputs.commit();
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "voxalign: error: %s (see voxalign --help)\n", e.what());
    return 2;
  } catch (const voxalign::Error& e) {
    std::fprintf(stderr, "voxalign: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "voxalign: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "voxalign: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
