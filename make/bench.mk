.PHONY: bench bench-quality bench-model backtest

bench: setup ## Throughput benchmark (10M rows, Spark vs DuckDB, daily step): .bench/results.json
	$(PY) -m benchmarks.pipeline $(BENCH_ARGS)

bench-quality: setup ## Handbook chapter-5 protocol on the handbook's data: .bench/quality.json
	$(PY) -m benchmarks.quality $(BENCH_ARGS)

bench-model: setup ## One demo day's train + promote as the DAG runs them: .bench/model_step.json
	$(PY) -m benchmarks.model_step $(BENCH_ARGS)


backtest: setup ## The loop on the world's clock: late, paired and corrected files, the change of the world: .bench/backtest.json
	$(PY) -m benchmarks.backtest $(BENCH_ARGS)
