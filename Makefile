# recarena: `make run` (set up + the family comparison) and `make test` (set up + the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
# This machine (and CI) install the CPU wheel; a GPU machine uses: make setup TORCH_SPEC=torch==2.13.0 TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cu128
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= dev
RUN_ARGS ?=

export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: setup run suite test test-slow lint bench clean-venv

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m recarena.train --multirun experiment=compare_families $(RUN_ARGS)

# the benchmark suite: every family on ML-1M, Book-Crossing, Instacart, ml100k and FilmTrust (docs/benchmark-suite.md)
suite: setup
	$(PY) -m recarena.train --multirun experiment=benchmark_suite $(RUN_ARGS)

test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

lint: setup
	$(PY) -m ruff check src tests benchmarks

bench: setup
	$(PY) -m benchmarks.run --scale ml100k

clean-venv:
	rm -rf $(VENV)
