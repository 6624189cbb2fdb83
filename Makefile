# The workbook's entry points. `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KERNEL := indprior

# PROFILE: smoke | cpu | paper (default: paper when CUDA is available, else cpu)
PROFILE ?= $(shell [ -x $(PY) ] && $(PY) -c "import torch; print('paper' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
DATA ?= synthetic
RUN ?= $(PROFILE)
RUN_DIR := runs/$(RUN)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: help setup run-all lint test notebooks bench report browser-check lab clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=smoke|cpu|paper  DATA=synthetic|cub:<root>  RUN=<name under runs/>"

setup: $(STAMP) ## build .venv from the pinned requirements (only re-runs when they change)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (indprior)" >/dev/null
	@touch $(STAMP)

run-all: $(STAMP) ## execute every notebook in order with papermill into runs/$(RUN)/
	@mkdir -p $(RUN_DIR)
	@for nb in $(NOTEBOOKS); do \
	  name=$$(basename $$nb .ipynb); \
	  echo "== $$name (PROFILE=$(PROFILE) DATA=$(DATA)) -> $(RUN_DIR)/$$name"; \
	  INDPRIOR_HEADLESS=1 $(VENV)/bin/papermill $$nb $(RUN_DIR)/$$name.ipynb -k $(KERNEL) --cwd notebooks \
	    -p profile $(PROFILE) -p dataset "$(DATA)" -p out_dir "$(abspath $(RUN_DIR))/$$name" \
	    -p run_root "$(abspath $(RUN_DIR))" || { echo "run-all: notebook $$nb FAILED (executed copy: $(RUN_DIR)/$$name.ipynb)"; exit 1; }; \
	done
	@echo "run-all: all notebooks ran; outputs in $(RUN_DIR)/"

lint: $(STAMP) ## ruff on lib/ tests/ bench/ tools/, and import-linter's layer and no-cycle contracts
	$(VENV)/bin/ruff check lib tests bench tools
	$(VENV)/bin/lint-imports --no-cache

test: $(STAMP) lint ## lint, then pytest on tests/ and nbval on notebooks/ (smoke profile)
	INDPRIOR_PROFILE=smoke INDPRIOR_HEADLESS=1 $(PY) -m pytest -q -p no:cacheprovider --durations=10 tests
	rm -rf runs/nbval
	INDPRIOR_PROFILE=smoke INDPRIOR_HEADLESS=1 INDPRIOR_RUN_ROOT=$(abspath runs/nbval) $(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-kernel-name $(KERNEL) notebooks

notebooks: $(STAMP) ## re-run notebooks/NN_*.ipynb (PROFILE, default cpu) and store their outputs (NB=... for some)
	$(PY) tools/refresh_notebooks.py --profile $(if $(filter command line,$(origin PROFILE)),$(PROFILE),cpu) --keep-runs runs/notebooks --reuse-runs $(NB)

bench: $(STAMP) ## speed / memory benchmarks -> table + bench/results.json
	$(PY) bench/run.py

report: $(STAMP) ## docs/results.md and docs/figures/ from the runs under runs/ and the HOC suite results
	$(PY) -m indprior report --runs runs --out docs/results.md \
	  $(foreach f,$(filter-out bench/hoc_suite/scale_%,$(wildcard bench/hoc_suite/*.jsonl)),--suite $(f)) \
	  $(foreach f,$(wildcard bench/hoc_suite/scale_*.jsonl),--scale $(f))

browser-check: $(STAMP) ## notebook 04's explorer in headless Chromium (needs: apt-get install -y chromium); RUN_DIR=, HOC_RUN_DIR=
	$(PY) tools/check_explorer_in_browser.py $(if $(RUN_DIR),--run-dir $(RUN_DIR)) $(if $(HOC_RUN_DIR),--hoc-run-dir $(HOC_RUN_DIR))

lab: $(STAMP) ## start JupyterLab on the venv kernel
	$(VENV)/bin/jupyter lab notebooks

clean: ## remove runs/ and caches (keeps .venv)
	rm -rf runs .cache .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
