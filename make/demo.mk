# `make demo`: generate a lake of several weeks and run the real DAG over consecutive dates.
DEMO_HOME ?= .demo
DEMO_ARGS ?=

.PHONY: demo

demo: setup ## Run the daily retraining loop end to end through the Airflow DAG (local Spark, local MLflow)
	rm -rf $(DEMO_HOME)
	$(PY) -m fraudops.orchestration.demo --home $(DEMO_HOME) $(DEMO_ARGS)
