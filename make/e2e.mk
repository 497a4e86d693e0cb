# The real-cluster check: the whole platform on a throwaway kind cluster (scripts/e2e.sh).
# Needs Docker, kind, helm and kubectl; CI runs it on pull requests that touch the deployment
# (.github/workflows/e2e.yaml). make test runs the script against recording fakes.

.PHONY: e2e

e2e: $(VENV)/.synced ## kind cluster, images, deploy, a generated lake, one DAG date, asserts
	PY=$(PY) MAKE="$(MAKE)" scripts/e2e.sh
