"""How the Airflow DAG launches the Spark steps of spark_jobs.steps.

- settings: the launch configuration, read from the environment (no Airflow, no pyspark);
- arrivals: which raw files a run has to process;
- local: run a step as a ``python -m`` subprocess on local[*];
- spark_application: build the step's SparkApplication from the one template in k8s/spark/;
- entry: the SparkApplication's main file, which runs a step module inside the Spark image;
- operators: the Airflow operators (the only module here that imports Airflow).
"""
