// nanobind module voxalign._voxalign: thin bindings of voxalign::core, one file per area
// (bind_<area>.cpp) over the shared conversions in bind_common.hpp. All numerics are C++.
#include "bind_common.hpp"

#include "voxalign/core/parallel.hpp"

namespace nb = nanobind;
using namespace voxalign;

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
  py::bind_io(m);
  py::bind_spline(m);
  py::bind_warp(m);
  py::bind_solvers(m);
  py::bind_register(m);
  py::bind_n4(m);
}
