# voxalign front door.
#   make demo   install what is missing, build, resample a real T1 volume through a rotation, N4-correct it, register
#   make test   install what is missing, build, and run every test (C++, Python, CLI)
#   make docs   regenerate docs/cli.md from docs/cli-intro.md and the command definitions
#   make test-gpu  the GPU check (docs/cuda.md): build with CUDA, run the GPU tests and bench/bench_gpu.py
PY      ?= python3
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
BUILD   := build/release
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: compilers and libraries the build links, plus real data for the demo and tests.
APT_PKGS := g++ make libeigen3-dev libnifti2-dev libcli11-dev libgtest-dev zlib1g-dev libdeflate-dev libhdf5-dev mricron-data
# PyPI packages: the build (nanobind, scikit-build-core, cmake, ninja) and the tests' references
# (hypothesis: scipy's own test module, run against voxalign.map_coordinates, needs it; antspyx: `import ants`,
# the displacement-field and .h5 tests; nipype, pydra, pybids: the workflow interfaces and the BIDS App,
# docs/pipelines.md).
PIP_PKGS := numpy scipy nibabel SimpleITK antspyx pylops nanobind scikit-build-core cmake ninja pytest hypothesis \
            nilearn nipype 'pydra>=0.25,<1.0' pybids
PY_MODULES := numpy,scipy,nibabel,SimpleITK,ants,nanobind,pytest,pylops,hypothesis,nilearn,nipype,pydra,bids

# The CUDA backend compiles wherever an nvcc is found (docs/cuda.md). Where none is installed, the
# toolkit's PyPI wheels (CUDA 13.0: the compiler, runtime, headers) are installed and used, so the
# CUDA code compiles on every build, GPU or not. nvvm is pinned with the compiler: a newer one emits
# PTX that 13.0's ptxas rejects.
CUDA_PIP := 'nvidia-cuda-nvcc==13.0.*' 'nvidia-cuda-runtime==13.0.*' 'nvidia-cuda-cccl==13.0.*' \
            'nvidia-cuda-crt==13.0.*' 'nvidia-nvvm==13.0.*'
# The PyPI toolkit's root (empty where it is not installed).
PIP_CUDA = $(shell $(PY) -c "import os,site;r=os.path.join(site.getsitepackages()[0],'nvidia','cu13');print(r if os.path.exists(os.path.join(r,'bin','nvcc')) else '')" 2>/dev/null)
# How cmake is pointed at nvcc: nothing for one on PATH; for the PyPI one, its path, and its library
# folder in CUDAFLAGS (its libraries are in lib/, where its nvcc.profile says lib64/).
CUDA_ENV = $(if $(shell command -v nvcc 2>/dev/null),,$(if $(PIP_CUDA),CUDAFLAGS=-L$(PIP_CUDA)/lib))
CUDA_ARGS = $(if $(shell command -v nvcc 2>/dev/null),,$(if $(PIP_CUDA),-DCMAKE_CUDA_COMPILER=$(PIP_CUDA)/bin/nvcc))

export PYTHONPATH := $(CURDIR)/$(BUILD)/python$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: all deps build test test-cpp test-python test-cli test-gpu docs demo bench install asan fuzz fuzz-coverage clean

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
	@if [ "$(VOXALIGN_CUDA)" != OFF ] && ! command -v nvcc >/dev/null && [ -z "$(PIP_CUDA)" ]; then \
	  echo "== installing the CUDA compiler from PyPI (compile only; no GPU needed):" $(CUDA_PIP); \
	  $(PY) -m pip install -q $(CUDA_PIP) || echo "== CUDA wheels not installed: the CUDA backend is left out"; \
	fi

build: deps
	@$(CUDA_ENV) cmake --preset release -DPython_EXECUTABLE=$$(command -v $(PY)) $(CUDA_ARGS) \
	  $(if $(VOXALIGN_CUDA),-DVOXALIGN_CUDA=$(VOXALIGN_CUDA)) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: build
	$(MAKE) --no-print-directory test-cpp test-python test-cli

test-cpp:
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-python:
	$(PY) -m pytest -q tests/python

test-cli:
	bash tests/cli/run_all.sh

# The device check (docs/cuda.md): a CUDA build, the GPU tests and the GPU benchmark, in one run.
test-gpu: deps
	@$(CUDA_ENV) bash tools/test_gpu.sh build/gpu $(CUDA_ARGS)

docs: build
	bash tools/cli_docs.sh $(BUILD)/voxalign > docs/cli.md.tmp && mv docs/cli.md.tmp docs/cli.md

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

# libFuzzer (clang, ASan + UBSan) on the NIfTI reader and the transform readers, FUZZ_SECONDS each,
# starting from tests/fuzz/corpus. Findings land in build/fuzz/findings/: copy them to
# tests/fuzz/regressions/<target>/ once fixed (the C++ test FuzzRegressions replays them in CI).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= nifti transform
fuzz: deps
	@command -v clang++ >/dev/null || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev
	cmake --preset fuzz >/dev/null
	cmake --build build/fuzz -j $(JOBS)
	@mkdir -p build/fuzz/findings build/fuzz/scratch
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus-$$t; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  VX_FUZZ_DIR=$(CURDIR)/build/fuzz/scratch build/fuzz/fuzz_$$t build/fuzz/corpus-$$t tests/fuzz/corpus/$$t \
	    tests/fuzz/regressions/$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -malloc_limit_mb=1024 \
	    -timeout=10 -max_len=4096 -print_final_stats=1 -artifact_prefix=build/fuzz/findings/$$t- \
	    2>&1 | tail -n 25; \
	done

# Line coverage of the readers by the fuzzers' corpora (after make fuzz): the same targets built with
# clang's source-based coverage, every kept input run once, llvm-cov's report for the reader files.
fuzz-coverage: fuzz
	cmake --preset fuzz -B build/fuzz-cov -DCMAKE_CXX_FLAGS="-fprofile-instr-generate -fcoverage-mapping" >/dev/null
	cmake --build build/fuzz-cov -j $(JOBS)
	@mkdir -p build/fuzz-cov/scratch
	@for t in $(FUZZ_TARGETS); do \
	  LLVM_PROFILE_FILE=build/fuzz-cov/$$t.profraw VX_FUZZ_DIR=$(CURDIR)/build/fuzz-cov/scratch \
	    build/fuzz-cov/fuzz_$$t -runs=0 build/fuzz/corpus-$$t tests/fuzz/corpus/$$t tests/fuzz/regressions/$$t \
	    >/dev/null 2>&1; \
	  llvm-profdata merge -sparse build/fuzz-cov/$$t.profraw -o build/fuzz-cov/$$t.profdata; \
	  echo "== fuzz_$$t: line coverage of the readers"; \
	  llvm-cov report build/fuzz-cov/fuzz_$$t -instr-profile=build/fuzz-cov/$$t.profdata \
	    src/image/nifti.cpp src/image/nifti_header.cpp src/transform/affine_io.cpp src/core/file_read.cpp; \
	done

clean:
	rm -rf build out
