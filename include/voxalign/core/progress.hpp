// Progress of long work for the command line (docs/conventions.md, "Progress and messages"). The
// library reports progress through callbacks in its options or arguments and never prints; the CLI
// turns them into a ProgressReporter: on a terminal a bar with the percentage and the estimated time
// left, redrawn in place at most 10 times a second; in a log (stderr not a terminal) one line every
// few seconds, so that a short run writes nothing.
#pragma once
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace voxalign {

struct ProgressSettings {
  bool enabled = true;     ///< false: nothing is ever written (-q)
  bool terminal = false;   ///< a bar redrawn in place with \r; else one line per `interval`
  double interval = 5.0;   ///< seconds between log lines (0: a line per update)
  double redraw = 0.1;     ///< seconds between redraws of the bar on a terminal
  int width = 30;          ///< characters of the bar between its brackets
};

class ProgressReporter {
public:
  using Clock = std::function<double()>;              ///< seconds, monotonic
  using Sink = std::function<void(std::string_view)>; ///< where the text goes

  /// A reporter writing to `sink`, reading the time from `clock` (tests inject both); `label`
  /// starts every line ("n4", "realign", "register moving.nii.gz").
  ProgressReporter(std::string label, ProgressSettings settings, Sink sink, Clock clock);
  /// The command line's reporter: stderr, a bar when stderr is a terminal, else log lines every
  /// VOXALIGN_PROGRESS_INTERVAL seconds (default 5); silent when `quiet`. Throws InvalidArgument
  /// when VOXALIGN_PROGRESS_INTERVAL is not a number of seconds >= 0.
  static ProgressReporter to_stderr(std::string label, bool quiet);
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;
  ProgressReporter(ProgressReporter&&) = delete;

  /// Work done so far as a fraction in [0, 1] (clamped; it never goes back), with an optional
  /// short note ("level 2/4", "pass 1/2"). Writes only when the interval has passed. Safe to call
  /// from several threads.
  void update(double fraction, std::string_view note = {});
  /// The work is over: a terminal's bar is erased; a log that got lines gets a last one with the
  /// total time. Called by the destructor if not before (when an exception ends the work, the
  /// destructor only erases the bar); later updates write nothing.
  void finish();

  /// The text of a terminal's bar (without \r): "label [#####.....]  42%  0:13 left  note".
  std::string bar(double fraction, double elapsed, std::string_view note) const;
  /// The text of a log line (without the newline): "label: 42% after 0:10, about 0:13 left  note".
  std::string line(double fraction, double elapsed, std::string_view note) const;
  /// Seconds as m:ss, or h:mm:ss from an hour; "?" when not finite or negative.
  static std::string clock_text(double seconds);
  /// The log interval from VOXALIGN_PROGRESS_INTERVAL (`text`; null or empty: `fallback`).
  static double interval_from_env(const char* text, double fallback = 5.0);

private:
  std::string label_;
  ProgressSettings s_;
  Sink sink_;
  Clock clock_;
  std::mutex mu_;
  double start_ = 0.0, last_ = 0.0, fraction_ = 0.0;
  size_t drawn_ = 0; ///< characters of the bar now on the terminal (0: none)
  bool wrote_ = false, finished_ = false;
  int uncaught_ = 0; ///< exceptions in flight at construction: more at destruction means the work failed
};

} // namespace voxalign
