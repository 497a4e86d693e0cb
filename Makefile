# fraudops: `make demo` runs the whole retraining loop locally, `make test` runs the tests.
# Both set up what they need first (a pinned uv, then the locked virtualenvs).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.9.5
TOOLS_DIR := .tools
UV := $(TOOLS_DIR)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := tools/checkov/.venv
export UV_PYTHON_DOWNLOADS := never
export PYTHONPATH := $(CURDIR)

# The tiers (pyproject.toml defines the markers, tests/conftest.py applies them): test-fast is the
# inner loop without a JVM, a server or the model loop; test is everything, as CI runs it.
FAST_TESTS := not spark and not server and not loop and not slow
# make test's pytest-xdist workers (tests/conftest.py keeps a module's tests on one worker);
# TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
# When make started: the times printed include the set-up.
STARTED := $(shell date +%s)
elapsed = echo ">>> $(1): $$(( $$(date +%s) - $(STARTED) )) s including set-up"

.PHONY: help setup test test-fast lint clean-local

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS_DIR)
	$(TOOLS_DIR)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked
	touch $@

$(CHECKOV_VENV)/.synced: tools/checkov/pyproject.toml tools/checkov/uv.lock | $(UV)
	cd tools/checkov && ../../$(UV) sync --locked
	touch $@

setup: $(VENV)/.synced $(CHECKOV_VENV)/.synced ## Create the virtualenvs from the lock files

test: setup ## Run the whole test suite; prints the 20 slowest tests and the time
	@status=0; $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=20 $(PYTEST_ARGS) || status=$$?; \
	$(call elapsed,make test); exit $$status

test-fast: lint ## The fast tier: no JVM, no server, no model loop, nothing slow (ruff first)
	@status=0; $(PY) -m pytest -m "$(FAST_TESTS)" --durations=10 $(PYTEST_ARGS) || status=$$?; \
	$(call elapsed,make test-fast); exit $$status

lint: setup ## ruff over the Python code
	$(VENV)/bin/ruff check fraudops spark_jobs dags tests benchmarks

clean-local: ## Remove the local lake, MLflow store and reports
	rm -rf data .mlflow reports .bench

-include make/*.mk
