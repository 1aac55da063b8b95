// Temporary output files, their signal-safe cleanup, and the CLI's all-or-nothing transaction
// (include/voxalign/core/output.hpp).
#include "voxalign/core/output.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>

#include "voxalign/core/error.hpp"

namespace voxalign {
namespace fs = std::filesystem;

namespace {

// The table the signal handler walks: fixed size, no allocation, paths as plain char arrays.
// A slot's state is 0 (free), 1 (being filled), 2 (a temporary file), 3 (a created directory).
constexpr int kSlots = 512;
constexpr size_t kPathMax = 4096;
char g_path[kSlots][kPathMax];
std::atomic<int> g_state[kSlots];
std::mutex g_mutex; // serialises claims and the transaction pointer (never taken by the handler)
OutputTransaction* g_tx = nullptr;
std::atomic<unsigned> g_counter{0};

int claim(const std::string& path, int kind) {
  VX_CHECK(path.size() < kPathMax, IoError, path, ": path too long for a temporary output");
  for (int s = 0; s < kSlots; ++s) {
    int expected = 0;
    if (g_state[s].compare_exchange_strong(expected, 1)) {
      std::memcpy(g_path[s], path.c_str(), path.size() + 1);
      g_state[s].store(kind, std::memory_order_release);
      return s;
    }
  }
  throw IoError(path + ": too many temporary output files at once (" + std::to_string(kSlots) + ")");
}

void release(const std::string& path, int kind) noexcept {
  for (int s = 0; s < kSlots; ++s)
    if (g_state[s].load(std::memory_order_acquire) == kind && path == g_path[s]) {
      g_state[s].store(0, std::memory_order_release);
      return;
    }
}

// Set while a commit renames files: a signal then waits for the renames to finish (it may arrive on
// any thread, so blocking it on the committing thread alone would not do).
std::atomic<int> g_committing{0};
volatile sig_atomic_t g_pending_signal = 0;

extern "C" void cleanup_and_reraise(int sig) {
  // Async-signal-safe only: atomics, unlink, rmdir, signal, raise.
  if (g_committing.load()) {
    g_pending_signal = sig;
    return;
  }
  for (int s = 0; s < kSlots; ++s)
    if (g_state[s].load(std::memory_order_acquire) == 2) ::unlink(g_path[s]);
  for (int pass = 0; pass < 8; ++pass) { // nested directories: children go first, then parents
    bool any = false;
    for (int s = kSlots; s-- > 0;)
      if (g_state[s].load(std::memory_order_acquire) == 3 && ::rmdir(g_path[s]) == 0) {
        g_state[s].store(0, std::memory_order_release);
        any = true;
      }
    if (!any) break;
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig); // delivered when the handler returns: the process dies by `sig`
}

} // namespace

std::string temporary_output(const std::string& target) {
  std::error_code ec;
  fs::path t = fs::absolute(fs::path(target), ec);
  if (ec) t = fs::path(target);
  static thread_local std::random_device rd;
  const std::string tmp = (t.parent_path() / (".vxtmp-" + std::to_string(::getpid()) + "-" +
                                              std::to_string(g_counter.fetch_add(1)) + "-" + std::to_string(rd() % 100000) +
                                              "-" + t.filename().string()))
                              .string();
  claim(tmp, 2);
  return tmp;
}

void discard_output(const std::string& tmp) noexcept {
  ::unlink(tmp.c_str());
  release(tmp, 2);
}

void finish_output(const std::string& tmp, const std::string& target) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_tx) {
      g_tx->add_file(tmp, target);
      return;
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    discard_output(tmp);
    throw IoError(target + ": cannot move the finished file into place: " + ec.message());
  }
  release(tmp, 2);
}

void create_output_directory(const std::string& dir) {
  std::error_code ec;
  const fs::path abs = fs::absolute(fs::path(dir), ec);
  VX_CHECK(!ec, IoError, dir, ": cannot create the directory: ", ec.message());
  // The directories that do not exist yet, outermost first.
  std::vector<fs::path> missing;
  for (fs::path p = abs.lexically_normal(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.insert(missing.begin(), p);
    if (p == p.parent_path()) break;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  for (const fs::path& p : missing) {
    if (p.filename().empty()) continue; // "a/b/" normalises to a trailing empty element
    if (g_tx) claim(p.string(), 3);     // before creating it: a signal in between finds it registered
    const bool made = fs::create_directory(p, ec);
    if (ec || !made) {
      if (g_tx) release(p.string(), 3);
      VX_CHECK(!ec && fs::is_directory(p, ec), IoError, dir, ": cannot create the directory",
               ec ? ": " + ec.message() : std::string());
      continue;
    }
    if (g_tx) g_tx->add_directory(p.string());
  }
  VX_CHECK(fs::is_directory(abs, ec), IoError, dir, ": exists and is not a directory");
}

void install_output_signal_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = cleanup_and_reraise;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGHUP);
  sigaddset(&sa.sa_mask, SIGPIPE);
  // SIGPIPE: the reader of stdout/stderr went away (`| grep -q`, `| head`) while a file was being written.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) {
    struct sigaction old;
    // Keep "ignored" as it was (nohup, a shell's background job ignoring SIGINT).
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(sig, &sa, nullptr);
  }
}

OutputTransaction::OutputTransaction() {
  std::lock_guard<std::mutex> lock(g_mutex);
  VX_CHECK(g_tx == nullptr, Error, "an output transaction is already open");
  g_tx = this;
}

OutputTransaction::~OutputTransaction() {
  if (!done_) rollback();
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_tx == this) g_tx = nullptr;
}

void OutputTransaction::add_file(const std::string& tmp, const std::string& target) { files_.emplace_back(tmp, target); }
void OutputTransaction::add_directory(const std::string& dir) { dirs_.push_back(dir); }

void OutputTransaction::commit() {
  VX_CHECK(!done_, Error, "output transaction committed twice");
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_tx = nullptr; // later writes (none expected) go straight into place
  }
  g_committing.store(1);
  std::string failure;
  // The one rename that fails in practice is onto a directory: look before moving anything, so
  // that such a failure leaves no output at all.
  for (const auto& [tmp, target] : files_) {
    std::error_code ec;
    if (fs::is_directory(target, ec)) {
      failure = target + ": is a directory; cannot put the output there";
      break;
    }
  }
  for (const auto& [tmp, target] : files_) {
    if (!failure.empty()) {
      discard_output(tmp);
      continue;
    }
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) {
      failure = target + ": cannot move the finished file into place: " + ec.message();
      discard_output(tmp);
    } else {
      release(tmp, 2);
    }
  }
  for (const auto& d : dirs_) release(d, 3);
  done_ = true;
  files_.clear();
  dirs_.clear();
  g_committing.store(0);
  if (const int sig = g_pending_signal) { // interrupted during the renames: die now, as asked
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
  if (!failure.empty()) throw IoError(failure);
}

void OutputTransaction::rollback() noexcept {
  if (done_) return;
  // Every registered temporary goes: the finished ones, and any a writer left registered.
  for (int s = 0; s < kSlots; ++s)
    if (g_state[s].load(std::memory_order_acquire) == 2) {
      ::unlink(g_path[s]);
      g_state[s].store(0, std::memory_order_release);
    }
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    std::error_code ec;
    fs::remove(*it, ec); // only if empty: a directory that received other files stays
    release(*it, 3);
  }
  files_.clear();
  dirs_.clear();
  done_ = true;
}

} // namespace voxalign
