.PHONY: bench bench-quality

bench: setup ## Throughput benchmark (10M rows, Spark vs DuckDB, daily step): .bench/results.json
	$(PY) -m benchmarks.pipeline $(BENCH_ARGS)

bench-quality: setup ## Handbook chapter-5 protocol on the handbook's data: .bench/quality.json
	$(PY) -m benchmarks.quality $(BENCH_ARGS)
