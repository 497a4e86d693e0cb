# Secrets scan of the tracked files (detect-secrets, PyPI). `make test` runs it too, through
# tests/test_secrets_scan.py. The baseline lists audited false positives (Secret references such
# as `secretName:`, hashes in tests); a finding that is not in it fails the scan.
DETECT_SECRETS ?= $(VENV)/bin/detect-secrets
SECRETS_BASELINE := .secrets.baseline

.PHONY: secrets-scan secrets-baseline

secrets-scan: ## Scan the git-tracked files for credentials (detect-secrets and Yandex Cloud formats)
	$(PY) -m pytest tests/test_secrets_scan.py -q -rs

secrets-baseline: ## Rewrite .secrets.baseline from a fresh scan; audit every new entry before committing
	git ls-files -z | xargs -0 $(DETECT_SECRETS) scan --exclude-files '^\.secrets\.baseline$$' \
		> $(SECRETS_BASELINE).new
	mv $(SECRETS_BASELINE).new $(SECRETS_BASELINE)
	$(DETECT_SECRETS) audit $(SECRETS_BASELINE)
