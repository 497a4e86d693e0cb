import datetime as dt

from pyspark.sql import types as T

from spark_jobs.datasets import local_frame
from spark_jobs.schema import CLEAN_SCHEMA

SCHEMA = T.StructType([
    T.StructField("name", T.StringType()), T.StructField("day", T.DateType()),
    T.StructField("seconds", T.LongType()), T.StructField("reason", T.StringType()),
])


def test_a_local_frame_holds_the_drivers_rows_with_their_types_and_nulls(spark):
    rows = [("a.txt", dt.date(2018, 4, 1), 1_522_540_800, None),
            ("b.txt", dt.date(2018, 4, 2), 2**40, "bad_header")]
    frame = local_frame(spark, rows, SCHEMA)
    assert frame.schema == SCHEMA
    assert [tuple(row) for row in frame.orderBy("name").collect()] == rows


def test_an_empty_local_frame_keeps_its_schema(spark):
    frame = local_frame(spark, [], CLEAN_SCHEMA)
    assert frame.schema == CLEAN_SCHEMA
    assert frame.count() == 0
