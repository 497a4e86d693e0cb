"""Cleaning job: new raw files -> clean Parquet partitions + quarantine, with full accounting.

    python -m spark_jobs.clean --lake-root data/lake --until 2018-05-01

Only raw files that the manifest does not know (by name, size, mtime, then MD5) are read. Each
line is parsed with an explicit schema and either becomes a clean row or a quarantined row with
the first rule it breaks. A run writes its days under a version of its own that no reader
resolves, checks that every line that entered was written to one side or the other, and
publishes them with one commit of clean_days.json (a re-run or a changed file replaces its
day; a run that dies before the commit leaves nothing anyone reads). It then records the files
in the manifest and only then writes its summary
(`has_new_rows` tells the orchestrator whether to go on), the record that the run finished: a
re-run with the same run id returns it (docs/data.md, "Retries, crashes and overlaps").
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import functools
import json
import logging
import operator
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from fraudops.core import cli, faults, lease, rawfiles, storage
from fraudops.core import pending as pending_work
from fraudops.core.lake import PARTITION_COLUMN, RAW_SUFFIX, Lake, write_version
from fraudops.core.publication import collect
from fraudops.core.rawformat import (
    AMOUNT_TOO_LARGE,
    BAD_TIMESTAMP,
    DAY_SECONDS,
    DUPLICATE_ID,
    EMPTY_FIELD,
    INVALID_LABEL,
    MAX_AMOUNT,
    NEGATIVE_AMOUNT,
    NEGATIVE_ID,
    NON_NUMERIC,
    TOO_FEW_FIELDS,
    TOO_MANY_FIELDS,
    WRONG_DAY,
)
from spark_jobs.datasets import local_frame, read_partitions, stage_days
from spark_jobs.schema import (
    CLEAN_SCHEMA,
    QUARANTINE_SCHEMA,
    RAW_COLUMNS,
    RAW_FIELDS,
    RAW_HEADER,
)

log = logging.getLogger(__name__)

FILE_REASONS = (rawfiles.BAD_HEADER, rawfiles.UNDECODABLE)

_FILES_SCHEMA = T.StructType([
    T.StructField("source_file", T.StringType()), T.StructField(PARTITION_COLUMN, T.DateType()),
    T.StructField("day_start", T.LongType()), T.StructField("file_reason", T.StringType())])
_LISTED_SCHEMA = T.StructType([T.StructField("transaction_id", T.LongType()),
                               T.StructField("listed", T.BooleanType())])

TIMESTAMP_SHAPE = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
# Rises by one per line of a file read in one part (see id_spans).
POSITION = "_position"
SPAN_ID_BITS = 14  # a span holds ids of one block of 2**14: two copies far apart are two spans
MAX_SPANS_PER_PART = 1_000  # more, and a part's ids are out of order: its day is checked whole
MAX_LISTED_IDS = 100_000  # ids that may repeat, checked one by one wherever they are
_N_FIELDS = len(RAW_FIELDS)


def read_lines(spark: SparkSession, files: list[rawfiles.RawFile]) -> DataFrame:
    """One row per data line: the line, its reading position, its file's day, and any
    file-level reason.

    A raw file is named after its day, so the day stands for the file from here on.
    """
    files_df = local_frame(
        spark,
        [(f.name, dt.date.fromisoformat(f.day), _epoch_seconds(f.day), f.file_reason)
         for f in files],
        _FILES_SCHEMA,
    )
    lines = (
        spark.read.option("lineSep", "\n")
        .text([f.path for f in files])
        .select(
            # A line ends at LF; the CRs before it (CRLF, CR CR LF) are not part of it, as
            # for the driver's count (rawfiles.inspect).
            F.expr("trim(TRAILING '\\r' FROM value)").alias("line"),
            F.monotonically_increasing_id().alias(POSITION),
            F.col("_metadata.file_name").alias("source_file"),
        )
        .join(F.broadcast(files_df), "source_file")
        .drop("source_file")
    )
    # Header lines are not data; a file whose header is wrong has none (all its lines enter).
    return lines.where(F.col("file_reason").isNotNull() | (F.col("line") != RAW_HEADER))


def _epoch_seconds(day: str) -> int:
    """Midnight UTC of ``day`` (the session time zone, see spark_jobs.session)."""
    return calendar.timegm(dt.date.fromisoformat(day).timetuple())


def _any(conditions) -> Column:
    """OR of plain column conditions: compiled by Spark, unlike a lambda over an array."""
    return functools.reduce(operator.or_, conditions)


def parse(lines: DataFrame) -> DataFrame:
    """Typed columns (null where a value does not parse) and the first row rule broken.

    Three projections, each over the columns of the one before: the fields as text, then as
    types, then the rule. In a single projection Spark would split, trim and cast the line
    again inside every branch of the rule (it does not share subexpressions with conditional
    branches), a large share of the parse time.
    """
    parts = F.split("line", ",", -1)
    text = lines.select(
        "line", POSITION, PARTITION_COLUMN, "day_start", "file_reason",
        F.size(parts).alias("_n_fields"),
        *[F.trim(F.get(parts, i)).alias(_text(name)) for i, (name, _) in enumerate(RAW_FIELDS)],
    )
    # Once a timestamp has the shape yyyy-MM-dd HH:mm:ss, a cast parses it exactly as that
    # format would (24:00:00 or 02-30 give null), without a date-time formatter per row.
    typed = text.select(
        "*",
        *[F.col(_text(name)).try_cast(dtype).alias(name) for name, dtype in RAW_FIELDS],
        F.col(_text("tx_datetime")).rlike(TIMESTAMP_SHAPE).alias("_ts_shape"),
    )
    col = F.col
    numeric = [name for name, _ in RAW_FIELDS if name != "tx_datetime"]
    not_numeric = _any(col(name).isNull() for name in numeric) | F.isnan(
        col("tx_amount")) | (F.abs(col("tx_amount")) == float("inf"))
    reason = (
        F.when(col("file_reason").isNotNull(), col("file_reason"))
        .when(col("_n_fields") < _N_FIELDS, TOO_FEW_FIELDS)
        .when(col("_n_fields") > _N_FIELDS, TOO_MANY_FIELDS)
        .when(_any(col(_text(name)) == "" for name, _ in RAW_FIELDS), EMPTY_FIELD)
        .when(not_numeric, NON_NUMERIC)
        .when(~col("_ts_shape") | col("tx_datetime").isNull(), BAD_TIMESTAMP)
        .when(~(F.unix_seconds(col("tx_datetime")) - col("day_start"))
              .between(0, DAY_SECONDS - 1), WRONG_DAY)
        .when((col("transaction_id") < 0) | (col("customer_id") < 0) | (col("terminal_id") < 0),
              NEGATIVE_ID)
        .when(col("tx_amount") < 0, NEGATIVE_AMOUNT)
        .when(col("tx_amount") >= MAX_AMOUNT, AMOUNT_TOO_LARGE)
        .when(~col("tx_fraud").isin(0, 1) | ~col("tx_fraud_scenario").between(0, 3),
              INVALID_LABEL)
    )
    return typed.select(
        "line", POSITION, PARTITION_COLUMN, *RAW_COLUMNS, reason.alias("reason"),
    )


def _text(name: str) -> str:
    return f"_{name}_text"


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
        ranked = rows.where(_any(checked)).select(POSITION,
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


def written_rows(spark: SparkSession, path: str, schema, days: set[str], version: str
                 ) -> Counter:
    """Rows per day as read back from the Parquet this run wrote as ``version``, before it is
    published (footer counts, no data scan)."""
    counts = read_partitions(spark, path, sorted(days), schema,
                             versions=dict.fromkeys(days, version)).groupBy(
        PARTITION_COLUMN).count()
    return Counter({row[0].isoformat(): row[1] for row in counts.collect()})


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


def _valid_ranges(manifest: dict[str, dict], day_stats: dict[str, dict]) -> dict[str, tuple]:
    """Per day, the range of its valid ids (clean or duplicate) as last cleaned; the clean
    range where the manifest does not say (entries written before it kept the range)."""
    ranges = {}
    for entry in manifest.values():
        if entry.get("valid_ids"):
            ranges[entry["day"]] = tuple(entry["valid_ids"])
    for day, stats in day_stats.items():
        ranges.setdefault(day, (stats["min_id"], stats["max_id"]))
    return ranges


@dataclass
class Cleaned:
    """What clean_files did: counts per file, and the files it added or set aside."""

    per_file: dict[str, Counter]
    valid_ids: dict[str, list[int]]  # per file: lowest and highest valid id
    restated: list[rawfiles.RawFile]  # unchanged files whose day was cleaned again
    set_aside: list[rawfiles.RawFile]  # files quarantined whole or emptied on the way
    rewritten: list[str]  # every day whose clean and quarantine rows were replaced


def clean_files(spark: SparkSession, lake: Lake, files: list[rawfiles.RawFile], run_id: str,
                emptied: list[rawfiles.RawFile] = (), manifest: dict | None = None) -> Cleaned:
    """Clean ``files`` into the lake and empty the days of ``emptied`` (files without rows, or
    quarantined whole).

    Days outside the batch whose copies an earlier day decides are restated (days_to_restate);
    a file whose lines Spark counts otherwise than the driver is quarantined whole
    (UNACCOUNTABLE) and the others go on. Every day rewritten is recorded as pending before the
    first write, for features and for the next clean (see fraudops.core.pending).
    """
    day_stats = lease.read_state(lake, lake.clean_days, default={}) or {}
    manifest = manifest if manifest is not None else rawfiles.load_manifest(lake)
    ranges = _valid_ranges(manifest, day_stats)
    files, emptied, restated = list(files), list(emptied), []
    parsed = ids = None
    while True:
        changing = {f.day for f in files} | {f.day for f in emptied}
        old = [(d, *ranges[d]) for d in sorted(changing) if d in ranges]
        if files:
            read_days = {f.day for f in files}
            parsed = parse(read_lines(spark, files)).persist()
            ids = id_spans(parsed)
            wrong = _unaccountable(files, ids)
            if wrong:
                files = [f for f in files if f not in wrong]
                emptied += wrong
                ids = ids.without({dt.date.fromisoformat(f.day) for f in wrong})
            new = [(d.isoformat(), low, high) for d, low, high in ids.spans]
        else:
            new = []
        more = days_to_restate(old + new, {d: r for d, r in ranges.items() if d not in changing})
        if not more:
            break
        log.info("restating days whose duplicates an earlier day decides: %s", cli.span(more))
        inspected, gone = rawfiles.inspect_days(lake, more, "restated")
        again = rawfiles.Pending()
        for raw in inspected:
            again.add(raw)
        restated += again.to_process + again.empty + again.quarantined
        files += again.to_process
        emptied += again.empty + again.quarantined + [_gone(lake, day) for day in gone]
        if parsed is not None:
            parsed.unpersist()
        parsed = None

    days = sorted({f.day for f in files})
    empty_days = sorted({f.day for f in emptied} - set(days))
    rewritten = sorted(set(days) | set(empty_days))
    per_file: dict[str, Counter] = defaultdict(Counter)
    valid_ids: dict[str, list[int]] = {}
    for f in emptied:
        if f.rows_in:
            per_file[f.name][f.file_reason] += f.rows_in
        day_stats.pop(f.day, None)
    # Before any write: these days' data may be neither old nor new until the state is saved,
    # and the marts of those that had rows or get some are owed.
    pending_work.add_clean_days(lake, rewritten)
    pending_work.add_features_days(lake, sorted(
        set(days) | {f.day for f in emptied if f.status != "new" or f.day in ranges}))
    version = _write_version(lake, run_id)
    if not files:  # days emptied only: no Spark
        publish(lake, day_stats, rewritten, set(), set(), version)
        return Cleaned(per_file, valid_ids, restated, emptied, rewritten)

    hit_days = clean_days_meeting(ids, day_stats, replaced=set(rewritten))
    existing = None
    if hit_days:
        log.info("checking incoming ids against clean days %s", cli.span(hit_days))
        existing = read_partitions(spark, lake.clean, hit_days, CLEAN_SCHEMA).select(
            "transaction_id")
    check = repeat_check(ids)
    if check.suspect_days or check.listed_ids:
        log.info("checking for repeats: every id of %d day(s), %d id(s) that two spans share",
                 len(check.suspect_days), len(check.listed_ids))
    batch = parsed
    if read_days != set(days):  # a file set aside after it was read
        batch = parsed.where(F.col(PARTITION_COLUMN).isin(
            [dt.date.fromisoformat(d) for d in days]))
    duplicates = duplicate_rows(spark, batch, existing, check)
    if duplicates is not None:
        duplicates = duplicates.persist()  # small; used by three passes
    classified = mark_duplicates(batch, duplicates)

    file_of = {f.day: f.name for f in files}
    stats = (
        classified.groupBy(PARTITION_COLUMN, "reason")
        .agg(F.count("*").alias("rows"), F.min("transaction_id").alias("min_id"),
             F.max("transaction_id").alias("max_id"), F.sum("tx_fraud").alias("frauds"))
        .collect()  # one row per day (one file) and reason
    )
    clean_days, quarantine_days = set(), set()
    for row in stats:
        day = row[PARTITION_COLUMN].isoformat()
        name = file_of[day]
        per_file[name]["clean" if row.reason is None else row.reason] += row.rows
        if row.reason in (None, DUPLICATE_ID):
            low, high = valid_ids.get(name, (row.min_id, row.max_id))
            valid_ids[name] = [min(low, row.min_id), max(high, row.max_id)]
        if row.reason is None:
            clean_days.add(day)
            day_stats[day] = {"rows": row.rows, "frauds": row.frauds,
                              "min_id": row.min_id, "max_id": row.max_id}
        else:
            quarantine_days.add(day)
    for day in set(days) - clean_days:
        day_stats.pop(day, None)

    clean_rows = classified.where(F.col("reason").isNull()).select(
        *[F.col(f.name) for f in CLEAN_SCHEMA.fields]
    )
    log.info("writing clean days %s", cli.span(sorted(clean_days)))
    faults.point("clean.before_writes")
    lease.fence(lake)  # a run that stalled past its lease writes no data
    stage_days(clean_rows, lake.clean, clean_days, version)
    faults.point("clean.between_clean_and_quarantine")
    rejected = classified.where(F.col("reason").isNotNull()).select(
        F.concat(F.col(PARTITION_COLUMN).cast("string"), F.lit(RAW_SUFFIX)).alias("source_file"),
        "line", "reason", F.lit(run_id).alias("run_id"), PARTITION_COLUMN,
    )
    stage_days(rejected, lake.quarantine, quarantine_days, version)
    if duplicates is not None:
        duplicates.unpersist()
    parsed.unpersist()

    verify_accounting(spark, lake, files, per_file, days, empty_days,
                      {lake.clean: clean_days, lake.quarantine: quarantine_days}, version)
    publish(lake, day_stats, rewritten, clean_days, quarantine_days, version)
    return Cleaned(per_file, valid_ids, restated, emptied, rewritten)


def _write_version(lake: Lake, run_id: str) -> str:
    """The version this run writes its days as (see fraudops.core.lake.write_version)."""
    held = lease.holding(lake)
    return write_version(run_id, held.token if held is not None else uuid.uuid4().hex)


def publish(lake: Lake, day_stats: dict[str, dict], rewritten: list[str], clean_present: set[str],
            quarantine_present: set[str], version: str) -> None:
    """Switch readers to the days this run wrote, then delete what they replaced.

    The commit is the fenced write of clean_days.json: the clean days, their rows and now
    their versions, in one file. The quarantine's index is written just before it (the
    quarantine has no reader downstream; a run that dies between the two leaves its days
    pending, and the next run cleans them again). Days of ``rewritten`` without rows leave both
    indexes, and their folders go once the commit is made.
    """
    quarantine = lease.read_state(lake, lake.quarantine_days, default={}) or {}
    for day in rewritten:
        quarantine.pop(day, None)
    quarantine.update(dict.fromkeys(quarantine_present, version))
    for day in clean_present:
        day_stats[day]["version"] = version
    lease.write_state(lake, lake.quarantine_days, dict(sorted(quarantine.items())))
    lease.write_state(lake, lake.clean_days, day_stats)  # the commit
    faults.point("clean.after_clean_days")
    for path, present in ((lake.clean, clean_present), (lake.quarantine, quarantine_present)):
        collect(path, rewritten, removed=sorted(set(rewritten) - present))


def _unaccountable(files: list[rawfiles.RawFile], ids: IdSpans) -> list[rawfiles.RawFile]:
    """Files whose lines Spark counted otherwise than the driver: set aside whole, with the
    reason UNACCOUNTABLE (the file changed while it was read, or a line end the two read
    differently), so that the other files go on."""
    wrong = []
    for f in files:
        seen = ids.rows.get(dt.date.fromisoformat(f.day), 0)
        if seen != f.rows_in:
            log.error("%s: %d lines counted on the driver, Spark read %d: the file is "
                      "quarantined whole", f.name, f.rows_in, seen)
            f.file_reason = rawfiles.UNACCOUNTABLE
            wrong.append(f)
    return wrong


def _gone(lake: Lake, day: str) -> rawfiles.RawFile:
    """A day to restate whose raw file is no longer there: it has no rows."""
    name = f"{day}{RAW_SUFFIX}"
    return rawfiles.RawFile(name, lake.raw_file(day), day, 0, 0, file_reason=rawfiles.EMPTY,
                            status="restated")


class AccountingError(RuntimeError):
    """Rows entered that were neither written clean nor quarantined (or the reverse)."""


def verify_accounting(spark, lake, files, per_file, days, empty_days, written, version) -> None:
    """rows_in (counted on the driver) == clean + quarantined, as read back from what this run
    wrote (``written``: the days with rows, per dataset path) before it publishes them."""
    rows_in = Counter()
    for f in files:
        rows_in[f.day] += f.rows_in
        counted = sum(per_file[f.name].values())
        if counted != f.rows_in:
            raise AccountingError(f"{f.name}: {f.rows_in} lines entered, Spark saw {counted}")
    checked = sorted(set(days) | set(empty_days))
    clean = written_rows(spark, lake.clean, CLEAN_SCHEMA, written[lake.clean], version)
    quarantined = written_rows(spark, lake.quarantine, QUARANTINE_SCHEMA,
                               written[lake.quarantine], version)
    for day in checked:
        if rows_in[day] != clean[day] + quarantined[day]:
            raise AccountingError(
                f"{day}: rows_in={rows_in[day]} but clean={clean[day]} + "
                f"quarantined={quarantined[day]} were written"
            )


class RunIdReused(RuntimeError):
    """A run id that finished is asked for another request: its summary does not answer it."""


def run(lake: Lake, until: str | None, run_id: str, spark: SparkSession | None = None) -> dict:
    """Clean what arrived, holding the lake's lease; a run id that finished returns its summary.

    The summary is the run's record and is written last: a re-run with the same id after
    success changes nothing, and one after a crash finishes the work (see rawfiles.plan). A
    finished summary answers only the same request (the same ``until``).
    """
    with lease.held(lake, "clean", run_id) as held:
        done = storage.read_json(lake.run_summary("clean", run_id))
        if done is not None:
            if done.get("until") != until:
                raise RunIdReused(
                    f"clean run {run_id} finished with --until {done.get('until')}, not "
                    f"{until}: give this request a run id of its own")
            log.info("run %s cleaned already: its summary stands", run_id)
            return done
        return _run(lake, until, run_id, spark, held)


def _run(lake: Lake, until: str | None, run_id: str, spark: SparkSession | None,
         held: lease.Lease) -> dict:
    pending, manifest = rawfiles.plan(lake, until, redo_run=run_id)
    planned = {f.day for f in pending.to_process + pending.empty + pending.quarantined}
    # Days an interrupted run was rewriting: cleaned again from their files as they are now,
    # even where the manifest finds a file unchanged (it may have been restored meanwhile).
    unsettled = [d for d in pending_work.clean_days(lake) if d not in planned]
    if unsettled:
        log.warning("days an interrupted run was rewriting, cleaned again: %s",
                    cli.span(unsettled))
        inspected, gone = rawfiles.inspect_days(lake, unsettled, "restated")
        for raw in inspected:
            pending.add(raw)
        pending.empty += [_gone(lake, day) for day in gone]
        again = set(unsettled)
        pending.unchanged_redeliveries = [f for f in pending.unchanged_redeliveries
                                          if f.day not in again]
    files = pending.to_process
    emptied = pending.empty + pending.quarantined
    cleaned = Cleaned({}, {}, [], [], [])
    if files or emptied:
        if files:
            log.info("cleaning %d file(s): %s", len(files), cli.span([f.name for f in files]))
        session = (spark or _spark(lake)) if files else spark
        cleaned = clean_files(session, lake, files, run_id, emptied, manifest)
    else:
        log.info("no new raw files up to %s", until or "today")

    done = {f.name: f for f in files + emptied}
    for raw in cleaned.restated + cleaned.set_aside:
        done[raw.name] = raw
    summary_files = []
    for raw in sorted(done.values(), key=lambda f: f.name):
        counts = cleaned.per_file.get(raw.name, Counter())
        outcome = {
            "rows_clean": counts.get("clean", 0),
            "quarantined": {k: v for k, v in sorted(counts.items()) if k != "clean"},
        }
        if raw.md5:  # inspected: a file that is there
            manifest[raw.name] = {**rawfiles.manifest_entry(raw, run_id, outcome),
                                  "valid_ids": cleaned.valid_ids.get(raw.name)}
        else:  # a restated day whose file is gone
            manifest.pop(raw.name, None)
        summary_files.append({"name": raw.name, "day": raw.day, "status": raw.status,
                              "file_reason": raw.file_reason, "rows_in": raw.rows_in, **outcome})
    for raw in pending.unchanged_redeliveries:
        manifest[raw.name].update(size=raw.size, mtime_ns=raw.mtime_ns)

    by_reason = Counter()
    for item in summary_files:
        by_reason.update(item["quarantined"])
    rows_clean = sum(item["rows_clean"] for item in summary_files)
    whole = [f for f in summary_files if f["file_reason"] in rawfiles.WHOLE_FILE_REASONS]
    all_files = list(done.values())
    withdrawn = {f.day for f in cleaned.set_aside if f.status != "new"}
    summary = {
        "run_id": run_id,
        "until": until,
        "new_files": sum(1 for f in all_files if f.status == "new"),
        "changed_files": sum(1 for f in all_files if f.status == "changed"),
        "restated_files": sorted(f.name for f in cleaned.restated),
        "unchanged_redeliveries": [f.name for f in pending.unchanged_redeliveries],
        "ignored_files": pending.ignored_names,
        "files": summary_files,
        "rows_in": sum(item["rows_in"] for item in summary_files),
        "rows_clean": rows_clean,
        "rows_quarantined": sum(by_reason.values()),
        "quarantined_by_reason": dict(sorted(by_reason.items())),
        # Files quarantined whole: none of their lines is in the clean or quarantine tables.
        "quarantined_files": [{"name": f["name"], "day": f["day"], "reason": f["file_reason"],
                               "rows_in": f["rows_in"]} for f in whole],
        "alerts": [f"{f['name']} quarantined whole ({f['file_reason']}): its {f['rows_in']} "
                   f"line(s) are in no table and its day has no rows until a good file comes"
                   for f in whole],
        "changed_dates": sorted({f.day for f in files} | {f.day for f in cleaned.restated}
                                | withdrawn),
        "has_new_rows": rows_clean > 0,
        # Changed days whose marts are owed, this run's and any a failed features run left.
        "features_pending": pending_work.features_days(lake),
    }
    assert summary["rows_in"] == summary["rows_clean"] + summary["rows_quarantined"]
    held.check()
    rawfiles.save_manifest(lake, manifest)  # a run that dies before this leaves files to redo
    faults.point("clean.after_manifest")
    pending_work.remove_clean_days(lake, cleaned.rewritten)
    storage.write_json(lake.run_summary("clean", run_id), summary)  # the run's record: last
    return summary


def _spark(lake: Lake) -> SparkSession:
    from spark_jobs.session import get_spark

    return get_spark("clean", lake.root)


def log_summary(summary: dict) -> None:
    log.info(
        "rows_in=%d clean=%d quarantined=%d %s; has_new_rows=%s",
        summary["rows_in"], summary["rows_clean"], summary["rows_quarantined"],
        summary["quarantined_by_reason"], summary["has_new_rows"],
    )


def main(argv: list[str] | None = None) -> dict:
    parser = cli.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--until", type=cli.date_arg, default=None,
                        help="only files of days up to this one have arrived (default: all)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    lake = Lake.from_env(args.lake_root)
    summary = run(lake, args.until.isoformat() if args.until else None, cli.run_id(args.run_id))
    log_summary(summary)
    print(json.dumps({k: summary[k] for k in ("run_id", "new_files", "changed_files", "rows_in",
                                               "rows_clean", "rows_quarantined",
                                               "changed_dates", "has_new_rows")}))
    return summary


if __name__ == "__main__":
    main()
