.PHONY: rollback

rollback: setup ## Move the champion alias back to the previous model version
	$(PY) -m spark_jobs.rollback $(ROLLBACK_ARGS)
