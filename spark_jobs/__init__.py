"""The Spark jobs (Spark image): one module per pipeline step with a ``main()`` and ``--help``
(``python -m spark_jobs.clean|features|train|promote|score|report``), the lake's datasets and
schemas, the SparkSession, and the SparkApplication's entry file."""
