#include "common.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "voxalign/core/error.hpp"
#include "voxalign/core/parallel.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/sdc/sdc.hpp"

namespace voxalign::cli {

CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& about, const std::string& footer) {
  CLI::App* cmd = app.add_subcommand(name, about);
  cmd->footer(!footer.empty() && footer[0] == '\n' ? footer.substr(1) : footer);
  return cmd;
}

void add_common_options(CLI::App* cmd, CommonArgs& c, const std::string& dtype_help) {
  add_choice(cmd, "--dtype", c.dtype, dtype_names(), dtype_help);
  cmd->add_flag("-q,--quiet", c.quiet, "Print nothing on success");
  cmd->add_option("--threads", c.threads,
                  "Worker threads (default: $VOXALIGN_NUM_THREADS, else $OMP_NUM_THREADS, else "
                  "$ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS, else all cores). Results are identical for any number of "
                  "threads.")
      ->check(number_check(1, 1024, true));
}

CLI::Option* add_parsed(CLI::App* cmd, const std::string& name, const std::string& default_text, const std::string& help,
                        std::function<void(const std::string&)> apply) {
  CLI::Option* o = cmd->add_option_function<std::string>(
      name,
      [apply = std::move(apply)](const std::string& s) {
        try {
          apply(s);
        } catch (const InvalidArgument& e) {
          throw CLI::ValidationError(e.what());
        }
      },
      help);
  o->default_str(default_text);
  return o;
}

template <class T> Image<T> read_image(const std::string& path, const std::string& what, NiftiHeaderInfo* info) {
  try {
    return read_nifti<T>(path, info);
  } catch (...) {
    rethrow_with_context("reading " + what);
  }
}
template Image<float> read_image(const std::string&, const std::string&, NiftiHeaderInfo*);
template Image<double> read_image(const std::string&, const std::string&, NiftiHeaderInfo*);

LikeGrid like_grid(const std::string& path, const NiftiMeta& content) {
  try {
    const NiftiHeaderInfo like = read_nifti_header(path);
    return {like.geometry, meta_on_grid(content, like.meta)};
  } catch (...) {
    rethrow_with_context("reading --like");
  }
}

void check_output_dir(const std::string& path) {
  if (path.empty()) return;
  const auto dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  VX_CHECK(dir.empty() || std::filesystem::is_directory(dir, ec), InvalidArgument, path,
           ": the output directory does not exist");
}

void check_report_dir(const std::string& dir) {
  if (dir.empty()) return;
  const auto parent = std::filesystem::path(dir).parent_path();
  std::error_code ec;
  VX_CHECK(parent.empty() || std::filesystem::is_directory(parent, ec), InvalidArgument, "--report ", dir,
           ": its parent directory does not exist");
  VX_CHECK(!std::filesystem::exists(dir, ec) || std::filesystem::is_directory(dir, ec), InvalidArgument, "--report ",
           dir, ": exists and is not a directory");
}

namespace {

/// "" when `text` is a number as number_check() wants it, else what is wrong.
std::string number_problem(const std::string& text, double lo, double hi, bool integer, bool lo_open) {
  if (text.empty()) return "an empty value is not a number";
  const char* s = text.c_str();
  char* end = nullptr;
  errno = 0;
  double v;
  if (integer) {
    const long long i = std::strtoll(s, &end, 10);
    if (end == s || *end != '\0') return "'" + text + "' is not a whole number";
    if (errno == ERANGE) return "'" + text + "' is out of range";
    v = double(i);
  } else {
    v = std::strtod(s, &end);
    if (end == s || *end != '\0') return "'" + text + "' is not a number";
    if (errno == ERANGE && std::abs(v) > 1.0) return "'" + text + "' is too large (not a finite number)";
    if (!std::isfinite(v)) return "'" + text + "' is not a finite number";
  }
  if (v >= lo && !(lo_open && v == lo) && v <= hi) return "";
  std::ostringstream m;
  if (std::isinf(hi)) m << text << " must be " << (lo_open ? "> " : ">= ") << lo;
  else m << text << " is out of range " << (lo_open ? "(" : "[") << lo << ", " << hi << "]";
  return m.str();
}

std::string file_key(const std::string& p) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path abs = fs::absolute(fs::path(p), ec);
  const fs::path c = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal().string() : c.string();
}

} // namespace

CLI::Validator number_check(double lo, double hi, bool integer, bool lo_open) {
  std::ostringstream d;
  d << (integer ? "INT" : "NUMBER") << " in " << (lo_open ? "(" : "[") << lo << ", " << hi << "]";
  return CLI::Validator([=](std::string& text) { return number_problem(text, lo, hi, integer, lo_open); },
                        std::isinf(hi) ? "" : d.str());
}

std::vector<double> parse_number_list(const std::string& text, const char* what, double lo, double hi, bool integer,
                                      bool lo_open) {
  std::vector<double> out;
  if (text.empty()) return out;
  size_t pos = 0;
  while (true) {
    const size_t comma = text.find(',', pos);
    const std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    VX_CHECK(!item.empty(), InvalidArgument, what, ": '", text, "' has an empty item (give numbers separated by single commas)");
    const std::string bad = number_problem(item, lo, hi, integer, lo_open);
    VX_CHECK(bad.empty(), InvalidArgument, what, ": ", bad, " (in '", text, "')");
    out.push_back(std::strtod(item.c_str(), nullptr));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

Image<float> read_mask(const std::string& path, const std::string& what) {
  Image<float> m = read_image(path, what);
  const Geometry& g = m.geometry();
  VX_CHECK(g.dims[3] == 1, InvalidArgument, what, " ", path, " is 4D (", g.dims[3],
           " frames); a mask is one 2D or 3D image (take one frame)");
  return m;
}

void check_distinct_files(const std::vector<std::pair<std::string, std::string>>& inputs,
                          const std::vector<std::pair<std::string, std::string>>& outputs) {
  namespace fs = std::filesystem;
  auto same = [](const std::string& a, const std::string& b) {
    if (file_key(a) == file_key(b)) return true;
    std::error_code ec;
    return fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec); // hard links
  };
  for (size_t o = 0; o < outputs.size(); ++o) {
    const auto& [oname, opath] = outputs[o];
    if (opath.empty()) continue;
    for (const auto& [iname, ipath] : inputs)
      VX_CHECK(ipath.empty() || !same(opath, ipath), InvalidArgument, oname, " ", opath, " is the same file as ", iname, " ",
               ipath, ": refusing to overwrite an input (give another output name)");
    for (size_t p = 0; p < o; ++p)
      VX_CHECK(outputs[p].second.empty() || !same(opath, outputs[p].second), InvalidArgument, outputs[p].first, " and ",
               oname, " name the same file (", opath, "): give each output its own name");
  }
}

void apply_threads(int threads) {
  if (threads > 0) set_num_threads(threads);
}

std::string nearest_name(const std::string& word, const std::vector<std::string>& names) {
  auto distance = [](const std::string& a, const std::string& b) { // Levenshtein, one row
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& n : names)
    if (const size_t d = distance(word, n); d < best_d) best = n, best_d = d;
  return best;
}

std::string threads_used() {
  const ThreadCount t = thread_count();
  const std::string source = std::string(t.source) == "set_num_threads" ? "--threads"
                             : std::string(t.source) == "cores"         ? "all cores"
                                                                        : t.source;
  return "on " + std::to_string(t.n) + (t.n == 1 ? " thread (" : " threads (") + source + ")";
}


namespace {
std::string sidecar_name(const std::string& image) {
  std::string s = image;
  for (const char* ext : {".nii.gz", ".nii"})
    if (s.size() > std::strlen(ext) && s.compare(s.size() - std::strlen(ext), std::strlen(ext), ext) == 0)
      return s.substr(0, s.size() - std::strlen(ext)) + ".json";
  return "";
}

} // namespace

/// The two BIDS fields sdc needs, read with a pattern (the sidecar's other content is not looked at).
Sidecar read_sidecar(const std::string& image) {
  Sidecar s;
  s.path = sidecar_name(image);
  if (s.path.empty() || !std::filesystem::is_regular_file(s.path)) return s;
  std::ifstream f(s.path);
  std::stringstream b;
  b << f.rdbuf();
  const std::string text = b.str();
  std::smatch m;
  if (std::regex_search(text, m, std::regex("\"PhaseEncodingDirection\"\\s*:\\s*\"([^\"]*)\"")))
    s.pe = parse_phase_encoding(m[1].str(), s.path + ": PhaseEncodingDirection");
  if (std::regex_search(text, m, std::regex("\"TotalReadoutTime\"\\s*:\\s*([-+0-9.eE]+)"))) {
    char* end = nullptr;
    const double v = std::strtod(m[1].str().c_str(), &end);
    VX_CHECK(end && *end == 0 && std::isfinite(v) && v > 0, InvalidArgument, s.path, ": TotalReadoutTime must be > 0 s, got ",
             m[1].str());
    s.readout = v;
  }
  return s;
}

} // namespace voxalign::cli
