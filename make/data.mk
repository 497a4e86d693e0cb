# Synthetic raw files (fraudops.simulator.generate): the handbook's simulation into the local lake,
# or any lake root given as FRAUDOPS_LAKE_ROOT. Override the knobs on the command line:
#   make data DAYS=30 DEFECT_RATE=0.01

DAYS ?= 183
SEED ?= 0
DEFECT_RATE ?= 0

.PHONY: data

data: $(VENV)/.synced ## Generate DAYS days of raw files (DEFECT_RATE share of defective rows)
	$(PY) -m fraudops.simulator.generate --days $(DAYS) --seed $(SEED) --defect-rate $(DEFECT_RATE)
