"""Repeated transaction ids: where they can be, which rows are the copies, which days to restate.

The cleaning job's second pass, over the parsed batch (spark_jobs.parsing): id_spans reads
where the batch's valid ids lie from one aggregation, repeat_check narrows the exact check to
the ids and days where a repeat can be, duplicate_rows ranks those rows (the earliest
occurrence wins) and mark_duplicates quarantines the copies; clean_days_meeting and
days_to_restate name the clean days a batch must read or clean again
(docs/data-rules.md, "Deduplication, and why it is exact").
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections import Counter
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from fraudops.core.lake import PARTITION_COLUMN
from fraudops.core.rawformat import (
    DUPLICATE_ID,
)
from spark_jobs.datasets import local_frame
from spark_jobs.parsing import POSITION, any_of

_LISTED_SCHEMA = T.StructType([T.StructField("transaction_id", T.LongType()),
                               T.StructField("listed", T.BooleanType())])

SPAN_ID_BITS = 14  # a span holds ids of one block of 2**14: two copies far apart are two spans
MAX_SPANS_PER_PART = 1_000  # more, and a part's ids are out of order: its day is checked whole
MAX_LISTED_IDS = 100_000  # ids that may repeat, checked one by one wherever they are


@dataclass(frozen=True)
class IdSpans:
    """Where the batch's valid ids lie, from one aggregation (see id_spans)."""

    spans: list[tuple[dt.date, int, int]]  # (day, lowest id, highest id)
    scattered_days: set[dt.date]  # days with a part whose ids may repeat within one span
    rows: Counter = field(default_factory=Counter)  # lines per day, valid or not

    def without(self, days: set[dt.date]) -> IdSpans:
        return IdSpans([span for span in self.spans if span[0] not in days],
                       self.scattered_days - days,
                       Counter({d: n for d, n in self.rows.items() if d not in days}))


def id_spans(parsed: DataFrame, max_spans_per_part: int = MAX_SPANS_PER_PART,
             block_bits: int = SPAN_ID_BITS) -> IdSpans:
    """The id spans of the batch: no two valid rows of one span share an id.

    Transaction ids are a running number in reading order. A file is read in one part or more
    (a one-file batch is split across the cores). The valid rows of a part whose ids less
    their lines' reading positions are one constant (the offset) differ as their positions do,
    so no two are equal; rows broken by a rule may sit between them. A line inserted into a
    file (a repeated transaction) shifts the offset of the lines after it, so a part is a few
    spans, one per offset, whose ranges meet only around the insertions. A span is also cut at
    every 2**block_bits ids: late copies of an earlier day's transactions, inserted in time
    order, often share an offset, and would otherwise stand as one wide span over that day's
    ids. A part of more than
    ``max_spans_per_part`` spans (ids out of order) stands as one span, and its day is
    scattered: only the exact check can tell its repeats.

    The position is taken as the lines are read, before any rule, and cached with them: Spark
    numbers only the rows that pass a filter placed before it.

    The same aggregation counts every line of each day, valid or not, for the accounting
    (rows_in against Spark's lines, before anything is decided): the rows a rule broke are one
    group per part, without an id.
    """
    valid = F.col("reason").isNull()
    spans = (
        parsed.select(PARTITION_COLUMN, F.when(valid, F.col("transaction_id")).alias("_id"),
                      # monotonically_increasing_id keeps the Spark partition in its upper 31 bits
                      F.shiftright(POSITION, 33).alias("part"),
                      F.when(valid, F.col("transaction_id") - F.col(POSITION)).alias("offset"))
        .groupBy(PARTITION_COLUMN, "part", "offset",
                 F.shiftright("_id", block_bits).alias("block"))
        .agg(F.min("_id").alias("low"), F.max("_id").alias("high"), F.count("*").alias("n"))
    )
    span = F.when(F.col("low").isNotNull(), F.struct("low", "high"))
    parts = (
        spans.groupBy(PARTITION_COLUMN, "part")
        .agg(F.count("low").alias("n_spans"), F.min("low").alias("low"),
             F.max("high").alias("high"), F.collect_list(span).alias("spans"),
             F.sum("n").alias("rows"))
        .select(PARTITION_COLUMN, "low", "high", "rows",
                F.when(F.col("n_spans") <= max_spans_per_part, F.col("spans")).alias("spans"))
        .collect()  # one row per part of a file, with its spans where they are few
    )
    spans_of_batch, scattered, rows = [], set(), Counter()
    for part in parts:
        day = part[PARTITION_COLUMN]
        rows[day] += part.rows
        if part.low is None:  # no valid row in this part
            continue
        if part.spans is None:
            scattered.add(day)
            spans_of_batch.append((day, part.low, part.high))
        else:
            spans_of_batch.extend((day, span.low, span.high) for span in part.spans)
    return IdSpans(spans_of_batch, scattered, rows)


def shared_ranges(spans: list[tuple[dt.date, int, int]]) -> list[tuple[int, int, set[dt.date]]]:
    """Id ranges [low, high] inside two spans or more, each with the days of those spans."""
    # An end is placed after its span's last id; at one id, ends come before starts.
    events = sorted([(low, 1, i) for i, (_, low, _) in enumerate(spans)]
                    + [(high + 1, 0, i) for i, (_, _, high) in enumerate(spans)])
    open_spans: dict[int, dt.date] = {}
    shared: list[tuple[int, int, set[dt.date]]] = []
    previous = None
    for at, starts, i in events:
        if previous is not None and at > previous and len(open_spans) > 1:
            days = set(open_spans.values())
            if shared and shared[-1][1] == previous - 1:  # continues the range before it
                low, _, before = shared.pop()
                shared.append((low, at - 1, before | days))
            else:
                shared.append((previous, at - 1, days))
        if starts:
            open_spans[i] = spans[i][0]
        else:
            del open_spans[i]
        previous = at
    return shared


@dataclass(frozen=True)
class RepeatCheck:
    """What the exact check for ids repeated within the batch has to look at."""

    suspect_days: list[dt.date]  # every valid id of these days
    listed_ids: list[int]  # and these ids, wherever they are


def repeat_check(ids: IdSpans, max_listed_ids: int = MAX_LISTED_IDS) -> RepeatCheck:
    """Only an id inside two spans or more, or of a scattered day, can repeat.

    Those ids are listed, the narrowest shared ranges first, up to ``max_listed_ids``; the days
    of the spans that share a wider range are checked whole.
    """
    suspect, listed = set(ids.scattered_days), []
    for low, high, days in sorted(shared_ranges(ids.spans), key=lambda r: r[1] - r[0]):
        if high - low + 1 <= max_listed_ids - len(listed):
            listed.extend(range(low, high + 1))
        else:
            suspect |= days
    return RepeatCheck(sorted(suspect), sorted(listed))


def clean_days_meeting(ids: IdSpans, day_stats: dict[str, dict], replaced: set[str]) -> list[str]:
    """Clean days (other than those being replaced) whose id range meets a span of the batch.

    Transaction ids grow with time, so a new day's ids fall in no old day's range and nothing
    old is read; a late copy of an old transaction is a span of its own that points at the day
    to read.
    """
    merged: list[list[int]] = []  # the spans' union: disjoint ranges in ascending order
    for _, low, high in sorted(ids.spans, key=lambda span: span[1]):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    lows = [low for low, _ in merged]

    def meets(stats: dict) -> bool:
        i = bisect.bisect_right(lows, stats["max_id"]) - 1  # the last range starting in time
        return i >= 0 and merged[i][1] >= stats["min_id"]
    return sorted(day for day, stats in day_stats.items()
                  if day not in replaced and meets(stats))


def duplicate_rows(
    spark: SparkSession, parsed: DataFrame, existing_ids: DataFrame | None, check: RepeatCheck
) -> DataFrame | None:
    """Reading positions of the valid rows to quarantine as duplicates: a small set, or None
    where no row can be one.

    A valid row is a duplicate if its id is already clean, or if it repeats the id of an
    earlier row of the batch: among rows sharing an id, the one from the earliest file (then
    the earliest time, then the line text) is kept, so the choice does not depend on how Spark
    splits work. Repeats are looked for where ``check`` says they can be; every row of an id
    that may repeat is there (see repeat_check), so ranking those rows alone finds them all.
    """
    valid = parsed.where(F.col("reason").isNull()).select(
        POSITION, PARTITION_COLUMN, "transaction_id", "tx_datetime", "line")
    found, checked, rows = [], [], valid
    if check.suspect_days:
        checked.append(F.col(PARTITION_COLUMN).isin(check.suspect_days))
    if check.listed_ids:
        listed = local_frame(spark, [(i, True) for i in check.listed_ids], _LISTED_SCHEMA)
        rows = valid.join(F.broadcast(listed), "transaction_id", "left")
        checked.append(F.col("listed").isNotNull())
    if checked:
        order = Window.partitionBy("transaction_id").orderBy(
            PARTITION_COLUMN, "tx_datetime", "line")
        ranked = rows.where(any_of(checked)).select(POSITION,
                                                  F.row_number().over(order).alias("rank"))
        found.append(ranked.where(F.col("rank") > 1).select(POSITION))
    if existing_ids is not None:
        found.append(valid.join(existing_ids, "transaction_id", "left_semi").select(POSITION))
    if not found:
        return None
    return functools.reduce(DataFrame.unionByName, found).distinct()  # a row may be in both


def mark_duplicates(parsed: DataFrame, duplicates: DataFrame | None) -> DataFrame:
    """The batch with the rows at ``duplicates``' positions quarantined as duplicates.

    One lookup per row in a broadcast set: the rows keep their reading order, and each pass
    over the batch reads it once.
    """
    if duplicates is None:
        return parsed
    flagged = parsed.join(
        F.broadcast(duplicates.select(POSITION, F.lit(True).alias("_duplicate"))),
        POSITION, "left")
    return flagged.withColumn(
        "reason", F.when(F.col("_duplicate"), F.lit(DUPLICATE_ID)).otherwise(F.col("reason"))
    ).drop("_duplicate")


def days_to_restate(spans: list[tuple[str, int, int]], ranges: dict[str, tuple[int, int]]
                    ) -> list[str]:
    """Days outside the batch to clean again so that the earliest occurrence of an id wins
    whatever the order in which files came.

    ``spans`` are id ranges of the days the batch changes (their new spans, and the valid ids
    they held before); ``ranges`` the valid ids (clean or duplicate) of each other day. A day
    whose range meets a range of an earlier changed day may hold a copy that must now lose to
    it (a day delivered after its late duplicates), or a duplicate whose original is gone (a
    corrected or withdrawn day). Its file is unchanged, so its ids stay in its range: a day
    restated changes the days after it in the same way, until none is left. Ids grow with
    time, so a new day, the newest, reaches no other day and nothing is restated.
    """
    if not spans:
        return []
    restated: set[str] = set()
    frontier = list(spans)
    while frontier:
        first = min(day for day, _, _ in frontier)
        reached = [
            (day, low, high) for day, (low, high) in ranges.items()
            if day > first and day not in restated
            and any(other < day and o_low <= high and o_high >= low
                    for other, o_low, o_high in frontier)
        ]
        restated.update(day for day, _, _ in reached)
        frontier = reached
    return sorted(restated)


def valid_ranges(manifest: dict[str, dict], day_stats: dict[str, dict]) -> dict[str, tuple]:
    """Per day, the range of its valid ids (clean or duplicate) as last cleaned; the clean
    range where the manifest does not say (entries written before it kept the range)."""
    ranges = {}
    for entry in manifest.values():
        if entry.get("valid_ids"):
            ranges[entry["day"]] = tuple(entry["valid_ids"])
    for day, stats in day_stats.items():
        ranges.setdefault(day, (stats["min_id"], stats["max_id"]))
    return ranges
