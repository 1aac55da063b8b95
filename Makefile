# voxalign front door.
#   make demo   install what is missing, build, resample a real T1 volume through a rotation, N4-correct it, register
#   make test   install what is missing, build, and run every test (C++, Python, CLI)
PY      ?= python3
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
BUILD   := build/release
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: compilers and libraries the build links, plus real data for the demo and tests.
APT_PKGS := g++ make libeigen3-dev libnifti2-dev libcli11-dev libgtest-dev zlib1g-dev libdeflate-dev mricron-data
# PyPI packages: the build (nanobind, scikit-build-core, cmake, ninja) and the tests' references.
PIP_PKGS := numpy scipy nibabel SimpleITK pylops nanobind scikit-build-core cmake ninja pytest
PY_MODULES := numpy,scipy,nibabel,SimpleITK,nanobind,pytest,pylops

export PYTHONPATH := $(CURDIR)/$(BUILD)/python$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: all deps build test test-cpp test-python test-cli demo bench install asan clean

all: build

deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "== installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@if ! $(PY) -c "import $(PY_MODULES)" 2>/dev/null || ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then \
	  echo "== installing Python packages: $(PIP_PKGS)"; \
	  $(PY) -m pip install -q $(PIP_PKGS); \
	fi

build: deps
	@cmake --preset release -DPython_EXECUTABLE=$$(command -v $(PY)) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: build
	$(MAKE) --no-print-directory test-cpp test-python test-cli

test-cpp:
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-python:
	$(PY) -m pytest -q tests/python

test-cli:
	bash tests/cli/run_all.sh

demo: build
	@bash examples/demo.sh

bench: build
	$(PY) bench/bench_resample.py

# pip install . : builds the core, the Python module and the voxalign executable (on PATH).
install: deps
	$(PY) -m pip install .

# Debug build with AddressSanitizer + UndefinedBehaviorSanitizer, C++ tests only.
asan: deps
	cmake --preset debug-asan >/dev/null
	cmake --build build/debug-asan -j $(JOBS)
	cd build/debug-asan && ctest --output-on-failure

clean:
	rm -rf build out
