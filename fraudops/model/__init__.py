"""The model library (Spark image): families and their pipeline, time splits, evaluation,
metrics, drift, the MLflow registry and tracking, and rollback."""
