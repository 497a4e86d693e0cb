.PHONY: rollback

rollback: setup ## Move the champion alias back to the previous model version
	$(PY) -m fraudops.model.rollback $(ROLLBACK_ARGS)
