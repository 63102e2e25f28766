# Denoise Lab. `make demo` and `make test` bootstrap everything on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# torch is pinned: an unpinned install pulls several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
# pip on some machines warns about unreachable extra indexes; keep the log readable.
QUIET_PIP := grep -v "is ignored: it is neither a file nor a directory" || true

PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint clean help device-check

help:
	@echo "make demo   - set up .venv if needed, then the main job end to end (about 5 min on 2 cores)"
	@echo "make test   - set up .venv if needed, then run the whole test suite"
	@echo "make test-fast - the tests that need neither Ray nor minutes (the edit loop)"
	@echo "make lint   - ruff"
	@echo "make device-check [REPORT=dir] - the GPU tests and benches on a machine with one GPU (prints the plan without one)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) ($(TORCH_PIN), then the project with its dev extra)"
	@$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_PIN) 2>&1 | $(QUIET_PIP)
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | $(QUIET_PIP)
	@$(BIN)/python -c "import torch, ray, mlflow, skimage; print('installed: torch', torch.__version__, '| ray', ray.__version__, '| mlflow', mlflow.__version__)"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python jobs/demo.py

# Two pytest processes: the tests that may start Ray in one, in order; the others beside them.
test: $(STAMP)
	@PY=$(BIN)/python scripts/in-netns.sh scripts/run-tests.sh $(PYTEST_ARGS)

test-fast: $(STAMP)
	@scripts/in-netns.sh $(BIN)/python -m pytest -m "not slow and not ray" $(PYTEST_ARGS)

REPORT ?= device-report
device-check: $(STAMP)
	@scripts/device-check.sh $(REPORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf data demo runs mlruns mlflow.db ray_results .pytest_cache
