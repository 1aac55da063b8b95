// Output files: written under a temporary name, moved into place when complete, and never left
// behind half-written -- not by a failure, and not by SIGINT/SIGTERM/SIGHUP/SIGPIPE once the handlers are installed.
//
// Every writer of the library (write_nifti, write_text_file, the report) goes through
// temporary_output(): it makes a temporary name beside the target (same directory, so the final
// rename is atomic) and registers it in a process-wide table that a signal handler can walk
// without allocating. finish_output() then moves the file into place:
//  - with no OutputTransaction open (library and Python use), at once;
//  - while one is open (the CLI opens one around a command), at commit(), all files together, so a
//    command that fails half-way leaves none of its outputs. Without commit() (an exception, an
//    early return) the transaction removes its temporaries and the directories it created.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace voxalign {

/// A registered temporary name for `target` in the target's directory: ".vxtmp-<pid>-<n>-<name>"
/// (the name keeps the target's extension). Throws IoError when the table is full.
std::string temporary_output(const std::string& target);

/// The temporary file `tmp` is complete: rename it to `target` now, or at the open transaction's
/// commit(). Throws IoError (and removes `tmp`) when the rename fails.
void finish_output(const std::string& tmp, const std::string& target);

/// Remove a temporary file after a failed write and forget it (never throws).
void discard_output(const std::string& tmp) noexcept;

/// Create the output directory `dir` (and missing parents). Inside a transaction, directories it
/// creates are removed again if the transaction is not committed. Throws IoError on failure.
void create_output_directory(const std::string& dir);

/// Install SIGINT/SIGTERM/SIGHUP/SIGPIPE handlers that remove every registered temporary file (and the
/// directories an open transaction created), then die by the same signal (exit status 128 + n).
void install_output_signal_handlers();

/// All-or-nothing outputs for one command (see the file comment). One may be open at a time.
class OutputTransaction {
public:
  OutputTransaction();
  ~OutputTransaction(); // rolls back unless committed
  OutputTransaction(const OutputTransaction&) = delete;
  OutputTransaction& operator=(const OutputTransaction&) = delete;
  /// Move every finished file into place (a SIGINT/SIGTERM arriving meanwhile takes effect after). On a failed rename the
  /// remaining temporaries are removed and IoError is thrown.
  void commit();
  /// Remove the temporaries and the created directories (what the destructor does uncommitted).
  void rollback() noexcept;

  // Used by finish_output / create_output_directory.
  void add_file(const std::string& tmp, const std::string& target);
  void add_directory(const std::string& dir);

private:
  std::vector<std::pair<std::string, std::string>> files_; // (temporary, target)
  std::vector<std::string> dirs_;                          // created, in creation order
  bool done_ = false;
};

} // namespace voxalign
