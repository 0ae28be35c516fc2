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
	@echo "make bench  - regenerate the tables of benchmarks/RESULTS.md (about 90 min, idle machine)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev,onnx,dask,review]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	@bash scripts/demo.sh "$(BIN)" "$(DEMO_OUT)"

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest --runslow

# `make bench` regenerates every table of benchmarks/RESULTS.md that issue 5 asks for, in one command (about
# 90 min on the project's 2-core CPU; run it on an otherwise idle machine, the speed table times whole
# processes): the paper's Tables 1-6 and Fig. 9 on fresh simulator test sets beside the peers, the
# full-pipeline configurations, the real images, every method on a 4752x3168 image, how time and memory
# grow with image and particle size (benchmarks/scaling.py, issue 16), and the generalisation benchmark
# (issue 13: render2 styles and the real sets; it alone takes hours on 2 cores, the paper chain most of it;
# `benchmarks/generalisation.py --quick` is a 10-min sanity run), and the few-shot fine-tuning benchmark
# (issue 15, benchmarks/fewshot.py: 6 fine-tunes of 5 min each, about 45 min). YOLO rows need
# `make bench-yolo` and its weights (YOLO_WEIGHTS); ABLATION names extra translators for Tables 1/2.
YOLO_WEIGHTS ?= runs/yolo/yolov5nu/run/weights/last.pt
ABLATION ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/paper_tables.py --n 2 --size 512 768 --tune-budget 40 $(ABLATION) \
		$(if $(wildcard $(YOLO_WEIGHTS)),--yolo-weights $(YOLO_WEIGHTS),) --write
	$(BIN)/python benchmarks/full_configs.py --n 2 --write
	$(BIN)/python benchmarks/real_images.py --write
	$(BIN)/python benchmarks/speed_methods.py --repeats 3 --tune-budget 40 --write
	$(BIN)/python benchmarks/scaling.py --iso 7 10 15 30 55 90 --write
	$(BIN)/python benchmarks/generalisation.py --write
	$(BIN)/python benchmarks/fewshot.py --minutes 5 --write

clean-venv:
	rm -rf $(VENV)

# --- YOLO baseline (optional; docs/yolo.md) ----------------------------------------------------------
# ultralytics is AGPL-3.0: it lives only in its own environment .venv-yolo and srpsa never imports it.
# `make bench-yolo` builds that environment (about 6 GB, a few minutes from the local disk); the steps
# that then make the data, train and check are printed at the end (and listed in docs/yolo.md).
YOLO_VENV  ?= .venv-yolo
YOLO_STAMP := $(YOLO_VENV)/.yolo-installed

$(YOLO_STAMP): benchmarks/yolo_requirements.txt pyproject.toml
	@test -x $(YOLO_VENV)/bin/python || $(PYTHON) -m venv $(YOLO_VENV)
	$(YOLO_VENV)/bin/python -m pip install -q -r benchmarks/yolo_requirements.txt
	$(YOLO_VENV)/bin/python -m pip install -q -e . --no-deps
	@touch $(YOLO_STAMP)

.PHONY: bench-yolo
bench-yolo: $(YOLO_STAMP)
	@echo "YOLO environment ready: $(YOLO_VENV). Next (see docs/yolo.md):"
	@echo "  $(YOLO_VENV)/bin/python benchmarks/yolo_baseline.py data --out runs/yolo/data --n-train 200 --n-val 8"
	@echo "  OMP_NUM_THREADS=1 nice -n 10 $(YOLO_VENV)/bin/python benchmarks/yolo_baseline.py train --data runs/yolo/data --out runs/yolo/yolov5nu --model yolov5nu.yaml --epochs 10 --imgsz 512 --seed 0"
	@echo "  $(YOLO_VENV)/bin/python benchmarks/yolo_baseline.py check --weights runs/yolo/yolov5nu/run/weights/last.pt --out runs/yolo/check"
