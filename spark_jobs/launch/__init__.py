"""How the Airflow DAG launches the Spark steps of spark_jobs.steps (docs/dag.md).

Without Airflow or pyspark:
- settings: the launch configuration, read from the environment;
- arrivals: what the DAG's branch tasks read from the lake (new raw files, clean's summary);
- local: run a step as a ``python -m`` subprocess on local[*], output streamed;
- spark_application: a step's SparkApplication, from the one template in k8s/spark/;
- entry: the SparkApplication's main file, which runs a step module inside the Spark image.

With Airflow (never pyspark):
- operators: one task per step whatever the backend, and the local operator;
- kubernetes_operator: the SparkKubernetesOperator that submits a step's SparkApplication;
- assets: the Airflow Assets the steps update.
"""
