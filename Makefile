# The README's commands. Each sets up .venv from the pinned lock file first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup run run-synthetic run-dropout run-figure1 run-tiny100 test test-kernels test-slow test-all browser lint ui bench clean \
	docs-runs docs-reports

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

## run: the whole pipeline (dvc repro) on the default profile: Imagenette 160 px, downloaded once from fast.ai.
## Offline, point it at a local copy or a mirror (run as a DVC experiment with the two params overridden):
##   make run IMAGENETTE=../shared/data/imagenette2-224.tgz     (or file:///abs/path.tgz: checksum computed)
##   make run IMAGENETTE=https://mirror/imagenette2-160.tgz IMAGENETTE_SHA256=<its sha256>
IMAGENETTE ?=
IMAGENETTE_FILE = $(patsubst file://%,%,$(patsubst file://localhost/%,/%,$(IMAGENETTE)))
IMAGENETTE_SHA256 ?= $(if $(wildcard $(IMAGENETTE_FILE)),$(firstword $(shell sha256sum '$(IMAGENETTE_FILE)')))
run: setup
	@[ -d .git ] || git init --quiet
ifeq ($(IMAGENETTE),)
	$(BIN)/dvc repro
else
	$(BIN)/dvc exp run -S 'data.url=$(IMAGENETTE)' $(if $(IMAGENETTE_SHA256),-S data.sha256=$(IMAGENETTE_SHA256))
endif
	@echo
	@echo "Results: reports/ablations.md (table + paper-claim verdicts), reports/curves.png,"
	@echo "         reports/figure1/figure1.png, reports/runs/<variant>-s<seed>/ (metrics.json, figures/),"
	@echo "         models/<variant>-s<seed>/model.keras"
	@echo "MLflow:  make ui, then open http://127.0.0.1:5000"

# A profile file's KEY=VALUE lines as `dvc exp run -S` options; the data overrides `make run` passes, when IMAGENETTE is set.
profile = $(foreach override,$(shell grep -E '^[a-z]' $(1)),-S '$(override)')
DATA_OVERRIDES = $(if $(IMAGENETTE),-S 'data.url=$(IMAGENETTE)' $(if $(IMAGENETTE_SHA256),-S data.sha256=$(IMAGENETTE_SHA256)))

## run-dropout: issue 24's dropout study: baseline and no_dropout, 40 epochs, seeds 0-2 (profiles/dropout.params),
## the rest of the default profile; IMAGENETTE as for `make run`. About 70 min on 2 CPU cores (6 trainings of
## 40 epochs at 9-10 min each, their evaluations, and the default Figure 1 unless DVC already has it).
##   make run-dropout IMAGENETTE=../shared/data/imagenette2-224.tgz
run-dropout: setup
	@[ -d .git ] || git init --quiet
	$(BIN)/dvc exp run -n dropout $(DATA_OVERRIDES) $(call profile,profiles/dropout.params)
	@echo
	@echo "Results (experiment 'dropout'): reports/ablations.md (the dropout claims), reports/curves.png,"
	@echo "         reports/runs/{baseline,no_dropout}-s{0,1,2}/; compare: dvc exp show"

## run-figure1: issue 24's Figure 1: ReLU vs tanh under both inits (glorot, paper), 5 rates swept on tuning seed 100,
## seeds 0-2 (profiles/figure1.params); only the figure1 stage (and ingest/preprocess if needed). About 20 min on
## 2 CPU cores alone (32 trainings of the four-layer net); 53.5 min measured with the cores shared (docs/results.md).
##   make run-figure1 IMAGENETTE=../shared/data/imagenette2-224.tgz
run-figure1: setup
	@[ -d .git ] || git init --quiet
	$(BIN)/dvc exp run -n figure1-inits $(DATA_OVERRIDES) $(call profile,profiles/figure1.params) figure1
	@echo
	@echo "Results (experiment 'figure1-inits'): reports/figure1/figure1.json (by_init), reports/figure1/figure1.png"

## run-tiny100: issue 25's 100-class study (profiles/tiny100.params): baseline, no_lrn, no_overlap_pool, one_gpu,
## 6 epochs, seeds 0-2, on Tiny-ImageNet-100 (TINY: the archive's path, file:// or http(s):// URL; its sha256 is
## computed for a local file, else give TINY_SHA256). About 60 min on 2 CPU cores (with the default Figure 1 on
## its images). TINY_SEEDS adds seeds, e.g. TINY_SEEDS=[0,1,2,3,4].
##   make run-tiny100 TINY=../shared/data/tiny-imagenet-100.zip
TINY ?=
TINY_FILE = $(patsubst file://%,%,$(patsubst file://localhost/%,/%,$(TINY)))
TINY_SHA256 ?= $(if $(wildcard $(TINY_FILE)),$(firstword $(shell sha256sum '$(TINY_FILE)')))
TINY_SEEDS ?=
run-tiny100: setup
	@[ -n '$(TINY)' ] || { echo "run-tiny100: give the archive, e.g. make run-tiny100 TINY=../shared/data/tiny-imagenet-100.zip"; exit 2; }
	@[ -d .git ] || git init --quiet
	$(BIN)/dvc exp run -n tiny100 $(call profile,profiles/tiny100.params) -S 'data.url=$(TINY)' \
		$(if $(TINY_SHA256),-S data.sha256=$(TINY_SHA256)) $(if $(TINY_SEEDS),-S 'ablations.seeds=$(TINY_SEEDS)')
	@echo
	@echo "Results (experiment 'tiny100'): reports/ablations.md (the top-5 claims), reports/runs/<variant>-s<seed>/"

## run-synthetic: the whole pipeline offline in about two minutes, on generated images and a small net
## (the overrides in profiles/synthetic.params, one `dvc exp run -S` per line; the tests use the same file)
SYNTHETIC_PROFILE = $(foreach override,$(shell grep -E '^[a-z]' profiles/synthetic.params),-S '$(override)')
run-synthetic: setup
	@[ -d .git ] || git init --quiet
	$(BIN)/dvc exp run -n synthetic $(SYNTHETIC_PROFILE)
	@echo
	@echo "Results (experiment 'synthetic', applied to the workspace): reports/ablations.md, reports/curves.png,"
	@echo "         reports/figure1/figure1.png, reports/runs/<variant>-s<seed>/, models/<variant>-s<seed>/model.keras"
	@echo "Compare: dvc exp show; MLflow: make ui, then open http://127.0.0.1:5000"

## docs-runs: copy a finished study's results into docs/ (per run: metrics.json, per_image.csv, history.csv,
## run.json; no models, no figures). STUDY is the workspace that ran it (default: this one):
##   make docs-runs STUDY=../studyrun     (docs/study/runs: every run; docs/default-run/runs: baseline, no_lrn)
## DROPOUT_STUDY / TINY_STUDY: the workspaces of `make run-dropout` / `make run-tiny100` (docs/dropout, docs/tiny100).
STUDY ?= .
DROPOUT_STUDY ?=
TINY_STUDY ?=
docs-runs: setup
	rm -rf docs/study/runs docs/default-run/runs
	$(BIN)/alexnet export-runs $(STUDY) docs/study/runs
	$(BIN)/alexnet export-runs $(STUDY) docs/default-run/runs --variants baseline no_lrn
	$(if $(DROPOUT_STUDY),rm -rf docs/dropout/runs && $(BIN)/alexnet export-runs $(DROPOUT_STUDY) docs/dropout/runs)
	$(if $(TINY_STUDY),rm -rf docs/tiny100/runs && $(BIN)/alexnet export-runs $(TINY_STUDY) docs/tiny100/runs)

## docs-reports: every committed study's report from its committed runs, and docs/claims: the studies side by side,
## Holm over all their claims (tests/test_reports.py re-renders each and compares bytes)
docs-reports: setup
	$(BIN)/alexnet report docs/study/runs --out docs/study
	$(BIN)/alexnet report docs/default-run/runs --out docs/default-run
	$(BIN)/alexnet report docs/default-run-12/runs --out docs/default-run-12
	$(BIN)/alexnet report docs/dropout/runs --out docs/dropout
	$(BIN)/alexnet report docs/tiny100/runs --out docs/tiny100
	$(BIN)/alexnet report imagenette=docs/study/runs dropout=docs/dropout/runs tiny100=docs/tiny100/runs --out docs/claims

## test: the fast suite (slow tests deselected)
test: setup
	$(BIN)/python -m pytest -m "not slow" -q

## test-kernels: the fast learning test again on TensorFlow's other CPU kernel paths, so that a pass which
## depends on one path cannot land: oneDNN capped at AVX2 (what an AVX2-only CPU runs), then oneDNN off
## (TensorFlow's default on CPUs without AVX512-VNNI/BF16 or AMX). .ci/run runs it after `test`.
KERNEL_PATHS = ONEDNN_MAX_CPU_ISA=AVX2 TF_ENABLE_ONEDNN_OPTS=0
test-kernels: setup
	@for setting in $(KERNEL_PATHS); do \
		echo "kernel path: $$setting"; \
		env $$setting $(BIN)/python -m pytest -m "not slow" -q -s tests/test_learning.py || exit 1; \
	done

## test-slow: only the slow tests (killed stages, queued workers, servers, real data); .ci/run runs it after test
test-slow: setup browser
	$(BIN)/python -m pytest -m slow -q -rs --durations=0

test-all: setup browser
	$(BIN)/python -m pytest -q

## browser: Debian's chromium for the MLflow UI test, installed where apt-get can (CI runs as root); else it skips
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed: the MLflow UI test will skip (apt-get install chromium)"

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
	$(BIN)/python bench/epoch_time.py
	$(BIN)/python bench/lrn.py
	$(BIN)/python bench/optimizer_update.py
	$(BIN)/python bench/lrn_in_step.py
	$(BIN)/python bench/step_profile.py

clean:
	rm -rf $(VENV)
