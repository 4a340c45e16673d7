# Two commands do all the set-up on a fresh machine:
#   make test   create .venv if missing, install with test extras, lint, run pytest (+ nbval)
#   make book   create .venv if missing, install with book extras, execute notebooks, build site
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# Small matmuls on a shared 2-core machine are many times slower when OpenMP threads
# busy-wait; passive waiting keeps them fast (see the notes on threads in the intro).
export OMP_WAIT_POLICY ?= PASSIVE
export PYTHONHASHSEED  ?= 0

.PHONY: test unit book lint clean site-test calibrate

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Every version is pinned by constraints.txt: the environment the stated numbers came from.
$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	touch $@

$(VENV)/.installed-book: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -c constraints.txt -e '.[book]'
	touch $@

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

# The unit tests alone: no notebooks, no slow end-to-end runs (a minute or two).
unit: lint
	$(BIN)/python -m pytest tests -m "not slow"

# Jupyter Book's execution cache is keyed on each notebook's code only. The pages also depend
# on the package, its committed calibrations (which claims are asserted), on the stored
# results under results/ (a full-scale run adds new ones) and on the scale, so when any of
# these changes the cache (and Sphinx's) is dropped.
SCALE_NOW    := $(or $(MINIPRUNER_SCALE),quick)
RESULTS_DIR  := $(or $(MINIPRUNER_RESULTS),results)
RESULT_FILES := $(shell find $(RESULTS_DIR) -name '*.json' 2>/dev/null)

_build/.scale-%:
	rm -f _build/.scale-*
	mkdir -p _build && touch $@

PACKAGE_SOURCES := $(wildcard minipruner/*.py minipruner/*/*.py minipruner/*/*/*.py)
CALIBRATIONS := $(wildcard minipruner/book/chapters/calibration/*.json)

_build/.package-stamp: $(PACKAGE_SOURCES) $(CALIBRATIONS) $(RESULT_FILES) _build/.scale-$(SCALE_NOW)
	rm -rf _build/.jupyter_cache _build/.doctrees
	mkdir -p _build && touch $@

# -W --keep-going: any warning (a failed glue, a broken reference) fails the build, after
# reporting all of them; a notebook that raises fails it too (nb_execution_raise_on_error).
JB_FLAGS := -W --keep-going

# The package as a wheel, linked from every chapter's "Run this chapter live" note: the Colab
# route uploads it next to the page's notebook, so it needs no repository address.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEEL   := _build/wheel/minipruner-$(VERSION)-py3-none-any.whl

$(WHEEL): pyproject.toml $(PACKAGE_SOURCES) $(CALIBRATIONS) | $(VENV)/.installed-book
	rm -rf _build/wheel build  # setuptools keeps files in build/ that the package no longer has
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --quiet -w _build/wheel .

# MINIPRUNER_WIDGETS=static: the site gets the precomputed explorers even when make book is
# run from a live Jupyter kernel (whose environment would otherwise select live widgets).
book: $(VENV)/.installed-book _build/.package-stamp $(WHEEL)
	MINIPRUNER_WIDGETS=static $(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "site: _build/html/index.html"

# The browser tests' own packages (JupyterLab, Playwright), pinned like everything else.
$(VENV)/.installed-browser: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --constraint constraints.txt -e '.[browser]'
	touch $@

# Headless Chromium opens every built page (the precomputed explorers), then runs each
# chapter that has an explorer (`python -m minipruner list --names --with-explorer`) in
# JupyterLab, moves its live explorer's first slider and checks the figure changes (needs:
# apt-get install chromium). Screenshots of both in _build/screenshots.
site-test: book $(VENV)/.installed-browser
	$(BIN)/python tests/browser/check_site.py
	chapters=$$($(BIN)/python -m minipruner list --names --with-explorer) || exit 1; \
	for n in $$chapters; do \
		$(BIN)/python tests/browser/check_live.py $$n || exit 1; \
	done

# Recompute every chapter's calibration (which claims its page asserts): the quick scale at
# ten seed offsets, offset 500 at two threads. About four CPU-hours (24 minutes an offset);
# resumable (results/ keeps each finished configuration).
CALIBRATION_OFFSETS := 0 100 200 300 400 500 600 700 800 900
calibrate: $(VENV)/.installed-test
	$(BIN)/python -m minipruner calibrate all --offsets $(CALIBRATION_OFFSETS) --threads 500:2

clean:
	rm -rf _build .pytest_cache
