// ProgressReporter: a bar on a terminal, a line every few seconds in a log (include/voxalign/core/progress.hpp).
#include "voxalign/core/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "voxalign/core/error.hpp"

namespace voxalign {

ProgressReporter::ProgressReporter(std::string label, ProgressSettings settings, Sink sink, Clock clock)
    : label_(std::move(label)), s_(settings), sink_(std::move(sink)), clock_(std::move(clock)) {
  start_ = last_ = clock_();
  uncaught_ = std::uncaught_exceptions();
}

ProgressReporter ProgressReporter::to_stderr(std::string label, bool quiet) {
  ProgressSettings s;
  s.enabled = !quiet;
  s.terminal = isatty(fileno(stderr)) != 0;
  s.interval = interval_from_env(quiet ? nullptr : std::getenv("VOXALIGN_PROGRESS_INTERVAL"));
  return ProgressReporter(
      std::move(label), s,
      [](std::string_view t) {
        std::fwrite(t.data(), 1, t.size(), stderr);
        std::fflush(stderr);
      },
      [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); });
}

namespace {
/// Text that blanks a bar of n characters and returns to the start of the line.
std::string erase_line(size_t n) {
  std::string t(n + 2, ' ');
  t.front() = t.back() = '\r';
  return t;
}
} // namespace

ProgressReporter::~ProgressReporter() {
  try {
    if (std::uncaught_exceptions() > uncaught_) { // failed work: erase the bar, claim nothing
      std::lock_guard<std::mutex> lock(mu_);
      if (s_.enabled && !finished_ && drawn_ > 0) sink_(erase_line(drawn_));
      finished_ = true;
      return;
    }
    finish();
  } catch (...) { // a failed write of a progress line is no reason to stop
  }
}

double ProgressReporter::interval_from_env(const char* text, double fallback) {
  if (!text || !*text) return fallback;
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  VX_CHECK(end && *end == '\0' && std::isfinite(v) && v >= 0, InvalidArgument,
           "VOXALIGN_PROGRESS_INTERVAL: expected a number of seconds >= 0, got '", text, "'");
  return v;
}

std::string ProgressReporter::clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e8) return "?";
  const auto t = static_cast<long long>(std::llround(seconds));
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", t / 60, t % 60);
  return buf;
}

namespace {
/// Time left by the rate so far; "?" until a little of the work is done.
std::string time_left(double fraction, double elapsed) {
  if (fraction < 0.005 || fraction >= 1.0) return fraction >= 1.0 ? "0:00" : "?";
  return ProgressReporter::clock_text(elapsed * (1.0 - fraction) / fraction);
}
int percent(double fraction) { return static_cast<int>(std::floor(100.0 * fraction)); }
} // namespace

std::string ProgressReporter::bar(double fraction, double elapsed, std::string_view note) const {
  const int fill = std::clamp(static_cast<int>(std::floor(fraction * s_.width)), 0, s_.width);
  std::string t = label_ + " [" + std::string(static_cast<size_t>(fill), '#') +
                  std::string(static_cast<size_t>(s_.width - fill), '.') + "] ";
  char pct[8];
  std::snprintf(pct, sizeof pct, "%3d%%", percent(fraction));
  t += pct;
  t += "  " + time_left(fraction, elapsed) + " left";
  if (!note.empty()) t.append("  ").append(note);
  return t;
}

std::string ProgressReporter::line(double fraction, double elapsed, std::string_view note) const {
  std::string t = label_ + ": " + std::to_string(percent(fraction)) + "% after " + clock_text(elapsed) + ", about " +
                  time_left(fraction, elapsed) + " left";
  if (!note.empty()) t.append("  ").append(note);
  return t;
}

void ProgressReporter::update(double fraction, std::string_view note) {
  if (!s_.enabled) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  fraction_ = std::max(fraction_, std::clamp(std::isfinite(fraction) ? fraction : 0.0, 0.0, 1.0));
  const double now = clock_();
  if (now - last_ < (s_.terminal ? s_.redraw : s_.interval)) return;
  last_ = now;
  if (s_.terminal) {
    const std::string t = bar(fraction_, now - start_, note);
    // pad over a longer previous bar, so that no characters of it remain
    const size_t pad = drawn_ > t.size() ? drawn_ - t.size() : 0;
    sink_("\r" + t + std::string(pad, ' '));
    drawn_ = t.size();
  } else {
    sink_(line(fraction_, now - start_, note) + "\n");
    wrote_ = true;
  }
}

void ProgressReporter::finish() {
  if (!s_.enabled) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  if (drawn_ > 0) sink_(erase_line(drawn_));
  if (wrote_) sink_(label_ + ": done in " + clock_text(clock_() - start_) + "\n");
}

} // namespace voxalign
