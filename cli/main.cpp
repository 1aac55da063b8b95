// voxalign: one program, one command per file under cli/.
#include <cstdio>
#include <exception>

#include "common.hpp"
#include "voxalign/core/error.hpp"
#include "voxalign/core/output.hpp"

int main(int argc, char** argv) {
  CLI::App app{"voxalign: fast, exact image registration and correction for medical imaging"};
  app.set_version_flag("--version", "voxalign 0.1.0");
  app.require_subcommand(1);
  voxalign::cli::register_resample(app);
  voxalign::cli::register_n4(app);
  voxalign::cli::register_warp(app);
  voxalign::cli::register_register(app);
  voxalign::cli::register_realign(app);
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
