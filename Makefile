# The README's commands. Each sets up .venv from the pinned lock file first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup run run-imagenette test test-all lint ui bench clean

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

## run-imagenette: the real-data CPU profile as a DVC experiment (Imagenette, 10 classes, 128 px crops)
## IMAGENETTE=path/or/url/of/an/imagenette .tgz (default: download imagenette2-160 from fast.ai)
IMAGENETTE ?=
IMAGENETTE_SOURCE = $(if $(IMAGENETTE),-S data.source=folder -S data.url=$(IMAGENETTE),-S data.source=imagenette -S data.size=160)
CPU_PROFILE = -S data.classes=10 -S data.train_per_class=null -S data.val_per_class=null \
	-S preprocess.size=144 -S preprocess.shards=8 -S model.width=1.0 -S model.fc_units=2048 \
	-S train.crop=128 -S train.batch_size=128 -S train.epochs=30 -S train.lr_patience=3 -S figure1.epochs=20
run-imagenette: setup
	@[ -d .git ] || git init --quiet
	$(BIN)/dvc exp run -n imagenette-cpu $(IMAGENETTE_SOURCE) $(CPU_PROFILE)

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
