// nanobind module voxalign._voxalign: thin bindings of voxalign::core, one file per area
// (bind_<area>.cpp) over the shared conversions in bind_common.hpp. All numerics are C++.
#include "bind_common.hpp"

#include <functional>
#include <map>

#include "voxalign/core/parallel.hpp"
#include "voxalign/image/nifti.hpp"
#include "voxalign/register/register.hpp"
#include "voxalign/spline/modes.hpp"
#include "voxalign/warp/warp.hpp"

namespace nb = nanobind;
using namespace voxalign;

namespace {

/// The C++ name tables by kind: NAMES[kind] (canonical names, as the CLI lists them), ALIASES[kind]
/// (other names accepted) and
/// canonical_name(kind, text) (any case and aliases accepted; ValueError with the CLI's message).
void bind_names(nb::module_& m) {
  using Canon = std::function<std::string(const std::string&)>;
  static std::map<std::string, Canon> canon;
  nb::dict names, aliases;
  const auto add = [&](const char* kind, const auto& table) {
    names[kind] = nb::tuple(nb::cast(table.names()));
    aliases[kind] = nb::tuple(nb::cast(table.aliases()));
    canon[kind] = [&table](const std::string& s) { return table.name(table.parse(s)); };
  };
  add("mode", mode_names());
  add("dtype", dtype_names());
  add("transform", transform_names());
  add("metric", metric_names());
  add("optimizer", optimizer_names());
  add("init", init_names());
  add("field_unit", field_unit_names());
  m.attr("NAMES") = names;
  m.attr("ALIASES") = aliases;
  m.def("canonical_name", [](const std::string& kind, const std::string& text) {
    const auto it = canon.find(kind);
    if (it == canon.end()) throw InvalidArgument("no name table '" + kind + "'");
    return it->second(text);
  });
}

} // namespace

NB_MODULE(_voxalign, m) {
  m.doc() = "voxalign core (C++); use the voxalign package for the documented API";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const IoError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    }
  });
  m.def("set_num_threads", [](int n) { // 0: the default; the package checks the argument first
    if (n < 0 || n > 1024) throw InvalidArgument("set_num_threads: n = " + std::to_string(n) + " is out of range [1, 1024]");
    set_num_threads(n);
  });
  m.def("get_num_threads", &num_threads);
  m.def("release_memory", [] { return release_cached_buffers(); });
  m.def("cached_memory", [] { return cached_bytes(); });
  bind_names(m);
  py::bind_io(m);
  py::bind_spline(m);
  py::bind_warp(m);
  py::bind_solvers(m);
  py::bind_register(m);
  py::bind_n4(m);
  py::bind_sdc(m);
  py::bind_superres(m);
}
