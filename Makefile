# Descent Dynamics. On a fresh machine: `make lab` (read the book) or `make test` (check everything).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
VENDOR := book/_vendor/.stamp
CHAPTERS := $(sort $(wildcard book/[0-9][0-9]_*.ipynb))
export JUPYTER_PLATFORM_DIRS := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# JAX's CPU linear algebra (Cholesky, solves, eigh) calls scipy's OpenBLAS, whose own threads fight XLA's
# on a small machine: a 256 x 256 Cholesky measured 0.3 ms with one thread and up to 180 ms with the
# default under load. One thread for it, unless the caller says otherwise.
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: install gpu lab book test lint notebooks bench clean

# The Python environment: the project and its dev + book extras, in .venv.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,book]'
	touch $@

# Front-end files the site serves itself: MathJax (npm) and plotly.js (from the plotly wheel).
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(VENDOR): node_modules/.package-lock.json $(STAMP)
	rm -rf book/_vendor && mkdir -p book/_vendor
	cp -r node_modules/mathjax/es5 book/_vendor/mathjax
	$(BIN)/python -c "import shutil; from widgets.sphinx_plotly import plotly_js_path; shutil.copy(plotly_js_path(), 'book/_vendor/plotly.min.js')"
	touch $@

install: $(STAMP) $(VENDOR)

# JAX with CUDA (NVIDIA GPUs) in the same environment; the widgets and chapters then run on the GPU.
gpu: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[cuda]'

# JupyterLab on the book, on 127.0.0.1 with a random token (printed in the terminal). Needs no npm.
lab: $(STAMP)
	$(BIN)/python -m widgets.warm  # compile the widgets once into the persistent cache: fast first frames
	$(BIN)/jupyter lab --ServerApp.root_dir=book --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--ServerApp.allow_root=True)

# The HTML site in book/_build/html, offline; any Sphinx warning fails the build.
book: install
	$(BIN)/jupyter-book build book --warningiserror --nitpick --keep-going

NBVAL := $(BIN)/python -m pytest $(CHAPTERS) --nbval --nbval-current-env --nbval-cell-timeout=600 -p no:cacheprovider
# nbval's second run: XLA emits code for this older x86-64 instruction set, which changes round-off the
# way another CPU does. The stored outputs must hold under both.
SECOND_ISA ?= SSE4_2

# Lint, unit + widget + site + browser tests, nbval on every chapter, and nbval again under SECOND_ISA.
test: install lint
	# The docstring examples run on their own: tests/conftest.py switches JAX to float64, they show float32.
	$(BIN)/python -m pytest --doctest-modules lessons -p no:cacheprovider
	$(BIN)/python -m pytest tests $(CHAPTERS) --nbval --nbval-current-env --nbval-cell-timeout=600
	@if [ "$$(uname -m)" = x86_64 ] || [ "$$(uname -m)" = amd64 ]; then \
	  echo "nbval, second run: the chapters again under XLA_FLAGS=--xla_cpu_max_isa=$(SECOND_ISA) (another round-off)"; \
	  XLA_FLAGS="$${XLA_FLAGS:+$$XLA_FLAGS }--xla_cpu_max_isa=$(SECOND_ISA)" $(NBVAL); \
	else \
	  echo "note: nbval's second run (XLA_FLAGS=--xla_cpu_max_isa=$(SECOND_ISA)) is skipped: the flag names x86-64 instruction sets and this machine is $$(uname -m)"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Re-execute every chapter in place (test mode: quiet progress bars) and refresh book/status.md.
notebooks: install
	$(BIN)/python book/_tools/execute.py $(CHAPTERS)

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf book/_build book/_vendor .pytest_cache
