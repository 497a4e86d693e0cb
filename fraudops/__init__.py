"""fraudops' Python, one package per place it runs.

- ``fraudops.core``: the lake layout, storage, the steps and their arguments, shared names;
  no PySpark, imported by both images.
- ``fraudops.model``: model families, splits, evaluation, metrics, the MLflow registry and
  tracking; the Spark image.
- ``fraudops.simulator``: the handbook's transaction simulator and the raw-file generator; the
  developer machine (``make data``, ``make demo``, benchmarks).
- ``fraudops.orchestration``: how the Airflow DAG launches the steps (locally or as
  SparkApplications), the local Airflow harness and the demo; no PySpark, the Airflow image.

The Spark jobs themselves are the top-level package ``spark_jobs`` (``python -m spark_jobs.clean``).
"""
