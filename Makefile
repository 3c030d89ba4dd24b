# The two commands of this template: `make demo` (the main job) and `make test` (the whole suite).
# `make demo TASK=autoencoder` demonstrates another task, `make demo DATASET=image_folder` another
# data source (also with TASK=segmentation, autoencoder or gan; `make demo TASK=regression
# DATASET=csv` or `TASK=transformer DATASET=csv`; and `make demo DATASET=mnist` when online). Both create the virtual environment in .venv with the
# pinned dependency set when it is missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR := build/demo

.PHONY: demo test test-quick coverage bench lint lock clean

demo: $(VENV)/.installed
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/cookiecutter --no-input --output-dir $(DEMO_DIR) . $(if $(TASK),task=$(TASK)) $(if $(DATASET),dataset=$(DATASET))
	cd $(DEMO_DIR)/* && $(abspath $(PY)) src/main.py
	@echo "demo project   $$(cd $(DEMO_DIR)/* && pwd) (the paths above are relative to it)"

test: $(VENV)/.installed
	$(PY) -m pytest

# For iterating, in about 2 minutes: lint, every combination baked and checked, the task contract,
# the hooks' refusals, and the default project's own suite (the machinery every project shares).
# `make test` stays the whole proof, and what CI runs.
QUICK_DIR := build/quick
test-quick: lint
	$(PY) -m pytest -m "not slow"
	rm -rf $(QUICK_DIR)
	$(VENV)/bin/cookiecutter --no-input --accept-hooks no --output-dir $(QUICK_DIR) .
	cd $(QUICK_DIR)/image_classification && $(abspath $(PY)) -m pytest -p no:cacheprovider -q

# Line coverage of the default project's src/ under its own whole test suite (benchmarks/coverage.ini).
COVERAGE_DIR := build/coverage
coverage: $(VENV)/.installed
	rm -rf $(COVERAGE_DIR)
	$(VENV)/bin/cookiecutter --no-input --accept-hooks no --output-dir $(COVERAGE_DIR) .
	cd $(COVERAGE_DIR)/image_classification && export COVERAGE_RCFILE=$(abspath benchmarks/coverage.ini) \
		&& $(abspath $(PY)) -m coverage run -m pytest -p no:cacheprovider -q \
		&& $(abspath $(PY)) -m coverage combine -q && $(abspath $(PY)) -m coverage report

# The Trainer against a bare loop and Lightning, the image-folder data path, whole runs against a
# bare script, and the time to a verified project; writes benchmarks/RESULTS.md (about 45 minutes
# on 2 cores). Installs Lightning (pinned) into .venv for the comparison.
bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt lightning==2.6.6
	$(PY) benchmarks/run.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check hooks tests benchmarks
	$(VENV)/bin/ruff format --check hooks tests benchmarks

# The generated projects' requirements.lock (templates/locks/), after a change to their
# requirements.txt or to constraints.txt; needs the package index (tests/test_lock.py checks them).
lock: $(VENV)/.installed
	$(PY) -m pip install --quiet uv
	templates/make_locks.sh

$(VENV)/.installed: requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
