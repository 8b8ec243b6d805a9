# The two commands of the README. Each makes the virtual environment and installs
# everything it needs on a fresh machine, then runs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)
export FACELIVE_DATA ?= $(SHARED)/data
export FACELIVE_DETECTOR ?= $(SHARED)/models/yunet/yunet_s_640_640.onnx
PYTEST_ARGS ?= -m "not slow"

.PHONY: run test test-all install clean arm64-check cpu-check docs

$(BIN)/.installed: pyproject.toml .ci/constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -c .ci/constraints.txt -e ".[edge,train,export,dev,teacher,demo,sign,docs,server]"
	touch $@

install: $(BIN)/.installed

## run: the main job on the embedded defaults
run: $(BIN)/.installed
	$(BIN)/python -m facelivenet.benchmarks.main_job

## test: the test suite (fast tests; `make test-all` adds the slow real-data ones)
test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: PYTEST_ARGS =
test-all: test

## docs: the documentation site (docs/, mkdocs.yml), built with --strict (a broken link fails) into DOCS_SITE (not tracked)
DOCS_SITE ?= build/docs-site
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(DOCS_SITE)

## arm64-check: the edge runtime on an emulated ARM64 machine (qemu-user) vs this one; not part of `make test`.
## Set-up downloads (apt, Debian arm64, PyPI aarch64 wheels) into ARM64_WORK, outside the repository.
ARM64_WORK ?= $(HOME)/.cache/facelivenet-arm64
ARM64_FACES ?= 24
arm64-check: $(BIN)/.installed
	$(BIN)/python .ci/arm64/check.py --work $(ARM64_WORK) --data $(FACELIVE_DATA) --faces $(ARM64_FACES)

## cpu-check: every shipped file on every CPU family it claims (native; emulated x86-64 AVX2 without VNNI,
## arm64 Cortex-A72 and Cortex-A76), gated like the export, then the cpu_sensitive tests on the emulated AVX2 CPU.
## Set-up as arm64-check (qemu-user, the aarch64 root). Emulation gives outputs, never timings; not part of `make test`.
## CPU_CHECK_WRITE=--write records the result in the bundle's manifest.
CPU_FACES ?= 24
CPU_CHECK_OUT ?= $(ARM64_WORK)/cpu_check
CPU_CHECK_WRITE ?=
cpu-check: $(BIN)/.installed
	bash .ci/arm64/setup.sh $(ARM64_WORK) $(CURDIR) $(CURDIR)/$(BIN)/python
	ARM64_WORK=$(ARM64_WORK) $(BIN)/facelive-bench cpus --data $(FACELIVE_DATA) --faces $(CPU_FACES) \
		--out $(CPU_CHECK_OUT) $(CPU_CHECK_WRITE)
	bash .ci/cpus/avx2_venv.sh $(ARM64_WORK) $(VENV)
	FACELIVE_EMULATED=1 $(ARM64_WORK)/avx2-venv/bin/python -m pytest -m "cpu_sensitive and not slow" -p no:cacheprovider -q

clean:
	rm -rf $(VENV) .pytest_cache
