"""How the Airflow DAG launches the Spark steps of fraudops.core.steps (docs/dag.md). No PySpark.

Without Airflow:
- settings: the launch configuration, read from the environment, and a run's context;
- arrivals: what the DAG's branch tasks read from the lake (new raw files, clean's summary);
- local: run a step as a ``python -m`` subprocess on local[*], output streamed;
- spark_application: a step's SparkApplication, from the one template in k8s/spark/;
- local_airflow, demo: the real Airflow CLI in a throwaway home, and ``make demo`` on it.

With Airflow:
- operators: one task per step whatever the backend, and the local operator;
- kubernetes_operator: the SparkKubernetesOperator that submits a step's SparkApplication;
- assets: the Airflow Assets the steps update.
"""
