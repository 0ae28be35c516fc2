# Two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
# The virtual environment is created on first use and reused afterwards.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
# PyTorch build to install before srpsa. The default is the CPU build that lies on this project's
# machines; elsewhere choose your own, e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
# (see README, "Choosing a PyTorch build"). If $(VENV) already has a torch, it is kept.
TORCH_SPEC ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.srpsa-installed
DEMO_OUT ?= demo_out

.PHONY: setup demo test test-slow bench clean-venv help

help:
	@echo "make demo   - set up .venv (first time) and analyse the bundled example image"
	@echo "make test   - set up .venv (first time) and run the test suite"
	@echo "make test-slow - also run slow tests"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev,onnx,dask]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	@bash scripts/demo.sh "$(BIN)" "$(DEMO_OUT)"

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest --runslow

clean-venv:
	rm -rf $(VENV)
