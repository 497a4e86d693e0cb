# Local Airflow: a throwaway home in .airflow/ (git-ignored, SQLite), the DAGs from dags/, the
# Spark steps on local[*] (FRAUDOPS_BACKEND=local). Other targets run Airflow commands as
#   $(AIRFLOW) dags test $(AIRFLOW_DAG_ID) 2018-04-02     (after the $(AIRFLOW_DB) prerequisite)
# The settings themselves are written once, in fraudops/orchestration/local_airflow.py
# (airflow_settings), which the demo and the DAG tests use too; make reads them from its
# command line, once per make run and only when a recipe needs them.

# UI_HOME: the working folder whose state the UIs show (lake, .mlflow, .airflow), e.g. .demo
UI_HOME ?= $(CURDIR)
override UI_HOME := $(abspath $(UI_HOME))
AIRFLOW_HOME_DIR := $(UI_HOME)/.airflow
AIRFLOW_DB := $(AIRFLOW_HOME_DIR)/airflow.db
AIRFLOW_DAG_ID := $(shell sed -n 's/^ *dag_id: *//p' fraudops/core/platform.yaml)
AIRFLOW_UI_PORT ?= 8080
MLFLOW_UI_PORT ?= 5000
AIRFLOW_PASSWORDS_FILE := $(AIRFLOW_HOME_DIR)/simple_auth_manager_passwords.json.generated

AIRFLOW_ENV = $(eval AIRFLOW_ENV := $(shell $(PY) -m fraudops.orchestration.local_airflow \
	--home '$(UI_HOME)'))$(AIRFLOW_ENV)
AIRFLOW = $(AIRFLOW_ENV) $(VENV)/bin/airflow

.PHONY: airflow-db ui

$(AIRFLOW_DB): $(VENV)/.synced
	mkdir -p $(AIRFLOW_HOME_DIR)
	$(AIRFLOW) db migrate > $(AIRFLOW_HOME_DIR)/db-migrate.log
	touch $@

airflow-db: $(AIRFLOW_DB) ## Create or upgrade the local Airflow metadata DB in .airflow/

ui: $(AIRFLOW_DB) ## Airflow (standalone) and the MLflow UI on localhost (UI_HOME=.demo after make demo)
	@# standalone starts its components as `airflow ...` commands: the venv goes first on PATH.
	@tracking_uri="$$($(AIRFLOW_ENV) $(PY) -c 'from fraudops.core.config import tracking_uri; print(tracking_uri())')"; \
	$(AIRFLOW_ENV) setsid $(VENV)/bin/mlflow ui --backend-store-uri "$$tracking_uri" \
		--host 127.0.0.1 --port $(MLFLOW_UI_PORT) > $(AIRFLOW_HOME_DIR)/mlflow-ui.log 2>&1 & \
	mlflow_pid=$$!; \
	( for _ in $$(seq 180); do \
		if [ -s $(AIRFLOW_PASSWORDS_FILE) ]; then \
			echo ">>> Airflow login (user: password): $$(cat $(AIRFLOW_PASSWORDS_FILE))"; break; \
		fi; sleep 1; done ) & \
	waiter_pid=$$!; \
	trap 'kill -- -$$mlflow_pid 2>/dev/null; kill $$waiter_pid 2>/dev/null || true' EXIT; \
	echo ">>> Airflow: http://127.0.0.1:$(AIRFLOW_UI_PORT)  (user admin; the generated password is kept in $(AIRFLOW_PASSWORDS_FILE))"; \
	echo ">>> MLflow:  http://127.0.0.1:$(MLFLOW_UI_PORT)  (store $$tracking_uri; log in $(AIRFLOW_HOME_DIR)/mlflow-ui.log)"; \
	$(AIRFLOW_ENV) AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$(AIRFLOW_UI_PORT) \
		AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(AIRFLOW_UI_PORT)/execution/ \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/airflow standalone
