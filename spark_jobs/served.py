"""The realized quality of served scores and alert lists on matured labels, in Spark.

What is measured and when is fraudops.model.served; this module computes it: per day and model
version, from the score rows and the alert list joined with the clean table's labels, one small
row per day collected to the driver.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from fraudops.core.lake import PARTITION_COLUMN, Lake
from fraudops.model.served import AP, card_precision
from spark_jobs.datasets import read_partitions
from spark_jobs.schema import CLEAN_SCHEMA, KEYS

LABEL = "tx_fraud"


def _days(spark: SparkSession, path: str, days: list[str]) -> DataFrame:
    return (spark.read.option("basePath", path)
            .parquet(*[f"{path}/{PARTITION_COLUMN}={d}" for d in days]))


def average_precision(rows: DataFrame, by: list[str], score: str = "fraud_probability",
                      label: str = LABEL) -> DataFrame:
    """Per group of ``by``: rows, frauds and the step-wise average precision of ``score``
    (scikit-learn's average_precision_score: tied scores are one threshold), null without a
    fraud. One aggregation per distinct score, then a running sum down the scores."""
    ties = rows.groupBy(*by, score).agg(F.sum(label).alias("_pos"), F.count("*").alias("_n"))
    down = (Window.partitionBy(*by).orderBy(F.desc(score))
            .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    return (ties.withColumn("_tp", F.sum("_pos").over(down))
            .withColumn("_seen", F.sum("_n").over(down))
            .groupBy(*by)
            .agg(F.sum("_n").alias("rows"), F.sum("_pos").alias("frauds"),
                 F.sum(F.col("_pos") * F.col("_tp") / F.col("_seen")).alias("_sum"))
            .select(*by, "rows", "frauds",
                    F.when(F.col("frauds") > 0, F.col("_sum") / F.col("frauds")).alias(AP)))


def measure(spark: SparkSession, lake: Lake, days: list[str], k: int,
            scores: str | None = None, alerts: str | None = None) -> dict[str, dict]:
    """{day: {model_version, rows, frauds, average_precision, alerted_cards, alerted_frauds,
    card_precision_at_<k>}} of the scores and alerts under ``scores``/``alerts`` (default: the
    lake's) on the lake's clean labels. Rows withdrawn from the clean table since they were
    scored are left out; an alerted card without clean rows now counts as genuine."""
    if not days:
        return {}
    labels = read_partitions(spark, lake.clean, days, CLEAN_SCHEMA).select(
        *KEYS, "customer_id", F.col(LABEL).cast("long").alias(LABEL))
    by = [PARTITION_COLUMN, "model_version"]
    served = (_days(spark, scores or lake.scores, days)
              .select(*KEYS, "model_version", "fraud_probability")
              .join(labels.select(*KEYS, LABEL), KEYS))
    quality = average_precision(served, by)
    cards = labels.groupBy(PARTITION_COLUMN, "customer_id").agg(F.max(LABEL).alias("_fraud"))
    listed = (_days(spark, alerts or lake.alerts, days)
              .where(F.col("rank") <= k)
              .join(cards, [PARTITION_COLUMN, "customer_id"], "left")
              .groupBy(*by)
              .agg(F.count("*").alias("alerted_cards"),
                   F.sum(F.coalesce("_fraud", F.lit(0))).alias("alerted_frauds")))
    out: dict[str, dict] = {}
    for row in quality.join(listed, by, "left").collect():  # one row per day
        day = row[PARTITION_COLUMN].isoformat()
        if day in out:
            raise RuntimeError(f"the scores of {day} hold more than one model version: a day is "
                               "written whole by one score run")
        frauds = row["alerted_frauds"] or 0
        out[day] = {"model_version": str(row["model_version"]), "rows": row["rows"],
                    "frauds": row["frauds"], AP: row[AP],
                    "alerted_cards": row["alerted_cards"] or 0, "alerted_frauds": frauds,
                    card_precision(k): frauds / k}
    return out
