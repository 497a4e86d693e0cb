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

.PHONY: help setup test lint clean-local

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

test: setup ## Run the test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup ## ruff over the Python code
	$(VENV)/bin/ruff check fraudops spark_jobs dags tests benchmarks

clean-local: ## Remove the local lake, MLflow store and reports
	rm -rf data .mlflow reports .bench

-include make/*.mk
