# The README's commands. Each sets up .venv from the pinned lock file first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup run test test-all lint ui bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

## run: the whole pipeline (dvc repro), then where the results are
run: setup
	@[ -d .git ] || git init --quiet
	$(BIN)/dvc repro
	@echo
	@echo "Results: reports/ablations.md (table + paper-claim verdicts), reports/curves.png,"
	@echo "         reports/runs/<variant>-s<seed>/ (metrics.json, figures/), models/<variant>-s<seed>/model.keras"
	@echo "MLflow:  make ui, then open http://127.0.0.1:5000"

## test: the fast suite (slow tests deselected)
test: setup
	$(BIN)/python -m pytest -m "not slow" -q

test-all: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

## ui: the MLflow UI on 127.0.0.1:5000 over the project's store
ui: setup
	$(BIN)/alexnet ui

## bench: benchmarks (installs the CPU build of torch for the PyTorch twin)
bench: setup
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/input_pipeline.py

clean:
	rm -rf $(VENV)
