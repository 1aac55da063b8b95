// ProgressReporter (core/progress.hpp) with an injected clock and sink: the bar's and the log
// line's text, the log interval (nothing for a short run, a line per interval, a closing line only
// after lines), the terminal's redraw limit and erasure, -q, and VOXALIGN_PROGRESS_INTERVAL's parsing.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "voxalign/core/error.hpp"
#include "voxalign/core/progress.hpp"

using namespace voxalign;

namespace {
struct Fake {
  double t = 100.0;
  std::string out;
  ProgressReporter::Sink sink() {
    return [this](std::string_view s) { out += s; };
  }
  ProgressReporter::Clock clock() {
    return [this] { return t; };
  }
};
ProgressSettings log_settings(double interval) {
  ProgressSettings s;
  s.terminal = false;
  s.interval = interval;
  return s;
}
ProgressSettings terminal_settings() {
  ProgressSettings s;
  s.terminal = true;
  s.width = 10;
  return s;
}
} // namespace

TEST(Progress, BarShowsFillPercentageTimeLeftAndNote) {
  Fake f;
  ProgressReporter p("n4", terminal_settings(), f.sink(), f.clock());
  EXPECT_EQ(p.bar(0.42, 10.0, "level 2/4"), "n4 [####......]  42%  0:14 left  level 2/4");
  EXPECT_EQ(p.bar(0.0, 0.0, ""), "n4 [..........]   0%  ? left");
  EXPECT_EQ(p.bar(1.0, 75.0, ""), "n4 [##########] 100%  0:00 left");
}

TEST(Progress, LogLineShowsPercentageElapsedAndTimeLeft) {
  Fake f;
  ProgressReporter p("realign", log_settings(5), f.sink(), f.clock());
  EXPECT_EQ(p.line(0.25, 65.0, "pass 1/2"), "realign: 25% after 1:05, about 3:15 left  pass 1/2");
}

TEST(Progress, ClockText) {
  EXPECT_EQ(ProgressReporter::clock_text(0), "0:00");
  EXPECT_EQ(ProgressReporter::clock_text(59.6), "1:00");
  EXPECT_EQ(ProgressReporter::clock_text(3725), "1:02:05");
  EXPECT_EQ(ProgressReporter::clock_text(-1), "?");
  EXPECT_EQ(ProgressReporter::clock_text(1.0 / 0.0), "?");
}

TEST(Progress, ShortRunWritesNothingToALog) {
  Fake f;
  {
    ProgressReporter p("n4", log_settings(5), f.sink(), f.clock());
    for (int i = 1; i <= 10; ++i) {
      f.t += 0.4; // 4 s in all: under the interval
      p.update(i / 10.0);
    }
  }
  EXPECT_EQ(f.out, "");
}

TEST(Progress, LogGetsOneLinePerIntervalAndAClosingLine) {
  Fake f;
  {
    ProgressReporter p("n4", log_settings(5), f.sink(), f.clock());
    for (int i = 1; i <= 12; ++i) { // one update a second for 12 s: lines at 5 s and 10 s
      f.t += 1.0;
      p.update(i / 12.0);
    }
  }
  EXPECT_EQ(f.out, "n4: 41% after 0:05, about 0:07 left\n"
                   "n4: 83% after 0:10, about 0:02 left\n"
                   "n4: done in 0:12\n");
}

TEST(Progress, IntervalZeroWritesEveryUpdate) {
  Fake f;
  ProgressReporter p("x", log_settings(0), f.sink(), f.clock());
  p.update(0.5);
  p.update(0.75);
  p.finish();
  p.update(0.9); // after finish: nothing
  EXPECT_EQ(f.out, "x: 50% after 0:00, about 0:00 left\nx: 75% after 0:00, about 0:00 left\nx: done in 0:00\n");
}

TEST(Progress, FractionNeverGoesBackAndIsClamped) {
  Fake f;
  ProgressReporter p("x", log_settings(0), f.sink(), f.clock());
  p.update(0.5);
  p.update(0.2);
  p.update(7.0);
  EXPECT_EQ(f.out, "x: 50% after 0:00, about 0:00 left\nx: 50% after 0:00, about 0:00 left\n"
                   "x: 100% after 0:00, about 0:00 left\n");
}

TEST(Progress, TerminalRedrawsAtMostTenTimesASecondAndErasesTheBar) {
  Fake f;
  ProgressReporter p("x", terminal_settings(), f.sink(), f.clock());
  int draws = 0;
  for (int i = 0; i < 100; ++i) { // 100 updates over 1 s
    f.t += 0.01;
    const size_t before = f.out.size();
    p.update(i / 100.0);
    draws += f.out.size() != before;
  }
  EXPECT_GE(draws, 9);
  EXPECT_LE(draws, 10);
  EXPECT_EQ(f.out.find('\n'), std::string::npos); // a bar is redrawn in place, never a new line
  EXPECT_EQ(f.out.front(), '\r');
  const std::string last = f.out.substr(f.out.rfind('\r') + 1);
  p.finish();
  EXPECT_EQ(f.out.substr(f.out.size() - last.size() - 2), "\r" + std::string(last.size(), ' ') + "\r");
}

TEST(Progress, TerminalShortRunDrawsNothing) {
  Fake f;
  {
    ProgressReporter p("x", terminal_settings(), f.sink(), f.clock());
    f.t += 0.05;
    p.update(1.0);
  }
  EXPECT_EQ(f.out, "");
}

TEST(Progress, QuietWritesNothing) {
  Fake f;
  ProgressSettings s = log_settings(0);
  s.enabled = false;
  {
    ProgressReporter p("x", s, f.sink(), f.clock());
    p.update(0.5);
    f.t += 100;
    p.update(1.0);
  }
  EXPECT_EQ(f.out, "");
}

TEST(Progress, FailedWorkGetsNoClosingLine) {
  Fake f;
  try {
    ProgressReporter p("x", log_settings(0), f.sink(), f.clock());
    p.update(0.5);
    throw std::runtime_error("failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(f.out, "x: 50% after 0:00, about 0:00 left\n");
}

TEST(Progress, UpdatesFromSeveralThreads) {
  Fake f;
  ProgressReporter p("x", log_settings(0), f.sink(), f.clock());
  std::vector<std::thread> th;
  for (int k = 0; k < 4; ++k)
    th.emplace_back([&, k] {
      for (int i = 0; i < 100; ++i) p.update((k * 100 + i) / 400.0);
    });
  for (auto& t : th) t.join();
  size_t lines = 0;
  for (char c : f.out) lines += c == '\n';
  EXPECT_EQ(lines, 400u);
}

TEST(Progress, IntervalFromEnvironment) {
  EXPECT_EQ(ProgressReporter::interval_from_env(nullptr), 5.0);
  EXPECT_EQ(ProgressReporter::interval_from_env(""), 5.0);
  EXPECT_EQ(ProgressReporter::interval_from_env("0"), 0.0);
  EXPECT_EQ(ProgressReporter::interval_from_env("2.5"), 2.5);
  for (const char* bad : {"-1", "abc", "5s", "nan", "inf"})
    EXPECT_THROW(ProgressReporter::interval_from_env(bad), InvalidArgument) << bad;
}
