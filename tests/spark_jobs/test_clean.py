"""The cleaning job: rules, quarantine reasons, accounting, manifest, idempotency."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import os

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from fraudops.core import rawfiles, rawformat, storage
from fraudops.core.lake import Lake
from fraudops.core.rawformat import RAW_HEADER
from spark_jobs import clean, dedup, parsing
from tests.spark_jobs.rawlines import row, write_raw

DAY = "2018-04-01"
TS = f"{DAY} 10:00:00"
HEADER = RAW_HEADER.encode()

# One line per row rule, each breaking that rule and no earlier one.
DEFECTS = {
    rawformat.TOO_FEW_FIELDS: "100,2018-04-01 10:00:00,1,2,10.00",
    rawformat.TOO_MANY_FIELDS: row(101, TS) + ",7",
    rawformat.EMPTY_FIELD: "102,2018-04-01 10:00:00,,2,10.00,0,0,0,0",
    rawformat.NON_NUMERIC: row(103, TS, amount="1.2.3"),
    rawformat.BAD_TIMESTAMP: row(104, "2018-04-01 24:00:00"),
    rawformat.WRONG_DAY: row(105, "2018-04-02 10:00:00"),
    rawformat.NEGATIVE_ID: row(106, TS, customer=-5),
    rawformat.NEGATIVE_AMOUNT: row(107, TS, amount="-3.50"),
    rawformat.AMOUNT_TOO_LARGE: row(109, TS, amount="1e300"),  # finite, but no sum of cents holds it
    rawformat.INVALID_LABEL: row(108, TS, fraud=2),
    rawformat.DUPLICATE_ID: row(1, "2018-04-01 11:00:00"),  # repeats the valid id 1 below
}


def read(lake: Lake, dataset: str) -> pd.DataFrame:
    path = getattr(lake, dataset)
    return pd.read_parquet(path) if os.path.exists(path) else pd.DataFrame()


def test_each_defect_is_quarantined_with_its_reason(spark, lake):
    write_raw(lake, DAY, [row(1, TS), *DEFECTS.values(), row(2, TS, amount="0.01")])
    summary = clean.run(lake, None, "r1", spark)

    quarantine = read(lake, "quarantine")
    got = dict(zip(quarantine["line"], quarantine["reason"]))
    assert got == {line: reason for reason, line in DEFECTS.items()}
    assert sorted(read(lake, "clean")["transaction_id"]) == [1, 2]
    assert summary["rows_in"] == 2 + len(DEFECTS) and summary["rows_clean"] == 2
    assert summary["quarantined_by_reason"] == {reason: 1 for reason in DEFECTS}


def test_a_zero_amount_is_a_clean_row_and_a_negative_one_is_not(spark, lake):
    """Zero-amount authorisations are real transactions (the handbook's simulator also emits
    0.00, frauds included); a negative amount, however small, is quarantined."""
    negative = [row(3, TS, amount="-0.01"), row(4, TS, amount="-12.00", fraud=1, scenario=1)]
    write_raw(lake, DAY, [row(1, TS, amount="0.00", fraud=1, scenario=2), row(2, TS, amount="0"),
                          *negative])
    summary = clean.run(lake, None, "r1", spark)

    assert summary["quarantined_by_reason"] == {rawformat.NEGATIVE_AMOUNT: 2}
    quarantine = read(lake, "quarantine")
    assert dict(zip(quarantine["line"], quarantine["reason"])) == {
        line: rawformat.NEGATIVE_AMOUNT for line in negative}
    kept = read(lake, "clean").sort_values("transaction_id")
    assert kept["transaction_id"].tolist() == [1, 2]
    assert kept["tx_amount"].tolist() == [0.0, 0.0] and kept["tx_fraud"].tolist() == [1, 0]


def test_nan_and_infinite_amounts_are_not_numeric(spark, lake):
    write_raw(lake, DAY, [row(1, TS, amount="NaN"), row(2, TS, amount="Infinity")])
    clean.run(lake, None, "r1", spark)
    assert set(read(lake, "quarantine")["reason"]) == {rawformat.NON_NUMERIC}


def test_file_level_problems_do_not_stop_other_files(spark, lake, caplog):
    write_raw(lake, "2018-04-01", [row(1, TS)])
    os.makedirs(lake.raw, exist_ok=True)
    open(lake.raw_file("2018-04-02"), "wb").close()  # empty
    write_raw(lake, "2018-04-03", [])  # header only
    with open(lake.raw_file("2018-04-04"), "wb") as handle:  # not UTF-8
        handle.write(b"\xff\xfe broken\n" + row(9, "2018-04-04 10:00:00").encode() + b"\n")
    write_raw(lake, "2018-04-05", [row(5, "2018-04-05 10:00:00")], header=False)
    with open(os.path.join(lake.raw, "notes.txt"), "w") as handle:
        handle.write("not a day file\n")

    summary = clean.run(lake, None, "r1", spark)

    by_name = {f["name"]: f for f in summary["files"]}
    assert by_name["2018-04-02.txt"]["file_reason"] == rawfiles.EMPTY
    assert by_name["2018-04-03.txt"]["file_reason"] == rawfiles.HEADER_ONLY
    assert by_name["2018-04-04.txt"]["quarantined"] == {rawfiles.UNDECODABLE: 2}
    assert by_name["2018-04-05.txt"]["quarantined"] == {rawfiles.BAD_HEADER: 1}
    assert by_name["2018-04-01.txt"]["rows_clean"] == 1
    assert summary["ignored_files"] == ["notes.txt"]
    assert "empty_file" in caplog.text and "header_only" in caplog.text
    assert summary["rows_in"] == summary["rows_clean"] + summary["rows_quarantined"] == 4


def test_duplicates_against_clean_history_and_within_batch(spark, lake):
    write_raw(lake, "2018-04-01", [row(1, "2018-04-01 10:00:00"), row(2, "2018-04-01 11:00:00")])
    clean.run(lake, None, "r1", spark)
    write_raw(lake, "2018-04-02", [row(3, "2018-04-02 09:00:00"),
                                   row(1, "2018-04-02 10:00:00"),   # already clean on day 1
                                   row(3, "2018-04-02 12:00:00")])  # repeats this batch's id 3
    summary = clean.run(lake, None, "r2", spark)

    assert summary["quarantined_by_reason"] == {rawformat.DUPLICATE_ID: 2}
    kept = read(lake, "clean").set_index("transaction_id")
    assert sorted(kept.index) == [1, 2, 3]
    # the earliest one is kept; time stamps are instants, stored in UTC
    assert kept.loc[3, "tx_datetime"] == pd.Timestamp("2018-04-02 09:00:00", tz="UTC")


def _at(day: str, hour: int) -> str:
    return f"{day} {hour:02d}:00:00"


D1, D2, D3 = "2018-04-01", "2018-04-02", "2018-04-03"


def _write_ids(lake: Lake, ids: dict[str, list]) -> None:
    """One file per day: a valid row per id, in order, and a broken line where a str is."""
    for day, day_ids in ids.items():
        write_raw(lake, day, [x if isinstance(x, str) else row(x, _at(day, i % 24))
                              for i, x in enumerate(day_ids)])


def _parsed(spark, lake: Lake):
    pending, _ = rawfiles.plan(lake, None)
    return parsing.parse(parsing.read_lines(spark, pending.to_process))


@pytest.mark.parametrize("ids, suspects, listed", [
    ({D1: [1, "broken", 3], D2: [4, 5]}, [], []),  # running ids; broken rows between
    ({D1: [1, 2, 2, 3]}, [], [2]),                 # a copy inserted after its line
    ({D1: [1, 2, 1]}, [], [1]),                    # a repeat within the day
    ({D1: [1, 3], D2: [5, 4]}, [], []),            # a gap, ids out of order: none shared
    ({D1: [1, 2], D2: [2, 3]}, [], [2]),           # the days' ranges meet
    ({D1: [1, 2, 3, 4, 5, 6], D2: [3, 4], D3: [10, 11]}, [], [3, 4]),  # inside D1's range
])
def test_only_ids_that_may_repeat_get_the_exact_check(spark, lake, ids, suspects, listed):
    _write_ids(lake, ids)
    check = dedup.repeat_check(dedup.id_spans(_parsed(spark, lake)))
    assert [day.isoformat() for day in check.suspect_days] == suspects
    assert check.listed_ids == listed


# Late copies of D1's ids 1 and 4 in D2 share an offset (id less position): one span [1, 4].
LATE_COPIES = {D1: [1, 2, 3, 4, 5, 6], D2: [10, 1, 11, 12, 4, 13]}


@pytest.mark.parametrize("ids, limits, suspects, listed", [
    ({D1: [1, 2, 3, 4, 5, 6], D2: [3, 4]}, {"max_listed": 1}, [D1, D2], []),  # too many
    ({D1: [1, 2, 3, 4, 5, 6], D2: [3, 4, 9, 9]}, {"max_listed": 2}, [D1, D2], [9]),  # narrow first
    ({D1: [1, 2, 2, 3], D2: [4, 5]}, {"max_spans": 1}, [D1], []),  # scattered: checked whole
    ({D1: [1, 2, 2, 3], D2: [2]}, {"max_spans": 1}, [D1], [2]),
    (LATE_COPIES, {}, [], [1, 2, 3, 4]),
    (LATE_COPIES, {"block_bits": 1}, [], [1, 4]),  # blocks of two ids cut the span
])
def test_limits_and_id_blocks_decide_what_is_checked(spark, lake, ids, limits, suspects,
                                                       listed):
    _write_ids(lake, ids)
    spans = dedup.id_spans(_parsed(spark, lake),
                           limits.get("max_spans", dedup.MAX_SPANS_PER_PART),
                           limits.get("block_bits", dedup.SPAN_ID_BITS))
    check = dedup.repeat_check(spans, limits.get("max_listed", dedup.MAX_LISTED_IDS))
    assert [day.isoformat() for day in check.suspect_days] == suspects
    assert check.listed_ids == listed


def test_a_file_read_in_parts_needs_no_check_when_its_ids_run_on(spark, lake):
    write_raw(lake, D1, [row(i, _at(D1, i)) for i in range(1, 20)])
    write_raw(lake, D2, [row(20, _at(D2, 1)), row(20, _at(D2, 2))])
    spark.conf.set("spark.sql.files.maxPartitionBytes", "256")
    try:
        parsed = _parsed(spark, lake)
        parts = parsed.where(F.col("tx_date") == D1).select(F.spark_partition_id()).distinct()
        assert parts.count() > 1  # the day really is read in parts
        check = dedup.repeat_check(dedup.id_spans(parsed))
        assert (check.suspect_days, check.listed_ids) == ([], [20])
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")


@pytest.mark.parametrize("batch, replaced, hits", [
    ([(D3, 20, 30)], set(), []),                    # a new day: nothing old is read
    ([(D3, 20, 30), (D3, 12, 12)], set(), [D2]),    # a late copy of a D2 transaction
    ([(D3, 5, 30)], set(), [D1, D2]),
    ([(D3, 9, 9), (D3, 30, 31)], set(), [D1]),      # the last id of D1's range
    ([(D2, 10, 19)], {D2}, []),                     # D2 is being replaced
])
def test_only_clean_days_whose_ranges_meet_a_span_are_read(batch, replaced, hits):
    spans = dedup.IdSpans([(dt.date.fromisoformat(d), low, high) for d, low, high in batch],
                          set())
    day_stats = {D1: {"min_id": 1, "max_id": 9}, D2: {"min_id": 10, "max_id": 19}}
    assert dedup.clean_days_meeting(spans, day_stats, replaced) == hits


_day_ids = st.lists(st.one_of(st.integers(1, 40), st.just("broken")), max_size=25)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ids=st.fixed_dictionaries({D1: _day_ids, D2: _day_ids}),
       start=st.integers(1, 30), max_spans=st.integers(1, 4), max_listed=st.integers(0, 6),
       already_clean=st.sets(st.integers(1, 50), max_size=5))
def test_duplicate_rows_are_exactly_the_repeats_and_the_already_clean(
        spark, tmp_path_factory, ids, start, max_spans, max_listed, already_clean):
    ids[D2] = list(range(start, start + 20)) + ids[D2]  # a long run, then anything
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    _write_ids(lake, ids)
    parsed = _parsed(spark, lake)
    check = dedup.repeat_check(dedup.id_spans(parsed, max_spans), max_listed)
    existing = (spark.createDataFrame([(i,) for i in sorted(already_clean)], "transaction_id long")
                if already_clean else None)
    duplicates = dedup.duplicate_rows(spark, parsed, existing, check)

    counts = collections.Counter(x for day_ids in ids.values() for x in day_ids
                                 if not isinstance(x, str))
    expected = {x: n if x in already_clean else n - 1 for x, n in counts.items()}
    got = collections.Counter() if duplicates is None else collections.Counter(
        r.transaction_id for r in parsed.join(duplicates, parsing.POSITION, "left_semi").collect())
    assert got == +collections.Counter(expected)  # every row of a clean id, all but one else


def test_an_id_repeated_across_days_of_one_batch_is_quarantined_once(spark, lake):
    write_raw(lake, D1, [row(1, _at(D1, 9)), row(2, _at(D1, 10))])
    write_raw(lake, D2, [row(2, _at(D2, 9)), row(3, _at(D2, 10))])  # each day's ids run on
    summary = clean.run(lake, None, "r1", spark)

    assert summary["quarantined_by_reason"] == {rawformat.DUPLICATE_ID: 1}
    quarantine = read(lake, "quarantine")
    assert list(quarantine["line"]) == [row(2, _at(D2, 9))]  # the earlier day keeps the id
    assert sorted(read(lake, "clean")["transaction_id"]) == [1, 2, 3]


def test_rerun_is_idempotent_and_new_day_processes_only_its_file(spark, lake):
    write_raw(lake, "2018-04-01", [row(1, "2018-04-01 10:00:00"), "garbage"])
    write_raw(lake, "2018-04-02", [row(2, "2018-04-02 10:00:00")])
    first = clean.run(lake, "2018-04-01", "r1", spark)
    assert first["changed_dates"] == ["2018-04-01"]  # day 2 has not "arrived" yet
    before = read(lake, "clean"), read(lake, "quarantine")

    again = clean.run(lake, "2018-04-01", "r2", spark)
    assert again["new_files"] == 0 and not again["has_new_rows"]

    # Forgetting the manifest forces a full reprocess: the result is row-for-row the same.
    os.remove(lake.manifest)
    clean.run(lake, "2018-04-01", "r1-again", spark)  # r1's own retry would return r1's summary
    after = read(lake, "clean"), read(lake, "quarantine")
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1].drop(columns="run_id"),
                                  after[1].drop(columns="run_id"))

    nxt = clean.run(lake, "2018-04-02", "r3", spark)
    assert [f["name"] for f in nxt["files"]] == ["2018-04-02.txt"]
    assert nxt["changed_dates"] == ["2018-04-02"]


def test_changed_file_replaces_its_day_and_identical_redelivery_is_skipped(spark, lake):
    write_raw(lake, DAY, [row(1, TS), row(2, TS)])
    clean.run(lake, None, "r1", spark)

    os.utime(lake.raw_file(DAY), ns=(1, 1))  # delivered again, same bytes
    same = clean.run(lake, None, "r2", spark)
    assert same["unchanged_redeliveries"] == [f"{DAY}.txt"] and not same["files"]

    write_raw(lake, DAY, [row(1, TS), row(3, TS, amount="-1")])  # corrected file
    changed = clean.run(lake, None, "r3", spark)
    assert changed["changed_files"] == 1
    assert sorted(read(lake, "clean")["transaction_id"]) == [1]
    assert list(read(lake, "quarantine")["reason"]) == [rawformat.NEGATIVE_AMOUNT]

    write_raw(lake, DAY, ["x"])  # every row bad now: the clean day disappears
    clean.run(lake, None, "r4", spark)
    assert read(lake, "clean").empty


_fields = st.one_of(
    st.integers(-3, 50).map(str),
    st.sampled_from(["", "abc", "1.5", "0", "2018-04-01 10:00:00", "2018-04-01 24:00:00",
                     "2018-04-02 10:00:00", "NaN"]),
)
_lines = st.one_of(
    st.lists(_fields, min_size=0, max_size=11).map(",".join),
    st.integers(0, 30).map(lambda i: row(i, TS)),
    st.text(alphabet=st.characters(blacklist_characters="\n\r", codec="utf-8"), max_size=30),
)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(day1=st.lists(_lines, min_size=1, max_size=30), day2=st.lists(_lines, max_size=30))
def test_accounting_holds_on_random_input(spark, tmp_path_factory, day1, day2):
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    write_raw(lake, "2018-04-01", day1)
    write_raw(lake, "2018-04-02", [line.replace("2018-04-01", "2018-04-02") for line in day2])
    summary = clean.run(lake, None, "r1", spark)

    rows_in = len(day1) + len(day2)
    assert summary["rows_in"] == rows_in
    written = len(read(lake, "clean")) + len(read(lake, "quarantine"))
    assert written == rows_in == summary["rows_clean"] + summary["rows_quarantined"]
    assert read(lake, "clean")["transaction_id"].is_unique if summary["rows_clean"] else True


@pytest.mark.parametrize("content, reason, rows_in", [
    (b"", rawfiles.EMPTY, 0),
    (b"\n", rawfiles.BAD_HEADER, 1),
    (HEADER, rawfiles.HEADER_ONLY, 0),
    (HEADER + b"\r\n", rawfiles.HEADER_ONLY, 0),
    (HEADER + b"\na\nb", None, 2),  # no final newline
    (HEADER + b"\r\na\r\n" + HEADER + b"\r\nb\r\n\r\n", None, 3),  # repeated header, empty line
    (HEADER + b"\n" + HEADER + b"\n" + HEADER + b"x\n", None, 1),  # a longer line is data
    (b"a\n" + HEADER + b"\n", rawfiles.BAD_HEADER, 2),
    (b"\xff\xfe\n", rawfiles.UNDECODABLE, 1),
    (HEADER + b"\r\r\na\r\r\n" + HEADER + b"\r\r\n", None, 1),  # CR CR LF, as Spark reads it
    (HEADER + b"\ra\rb\r", rawfiles.BAD_HEADER, 1),  # CR line ends only: one line
    ("\u00e9".encode() + b"\n", rawfiles.BAD_HEADER, 1),  # a character across two blocks
])
@pytest.mark.parametrize("block", [1 << 20, 3])  # whole, and in blocks of 3 bytes
def test_inspect_counts_the_data_lines_spark_will_see(tmp_path, monkeypatch, content, reason,
                                                      rows_in, block):
    monkeypatch.setattr(rawfiles, "READ_CHUNK", block)
    path = tmp_path / f"{DAY}.txt"
    path.write_bytes(content)
    raw = rawfiles.inspect(storage.FileEntry(str(path), len(content), 0), "new")
    assert (raw.file_reason, raw.rows_in) == (reason, rows_in)
    assert raw.md5 == hashlib.md5(content).hexdigest()


@pytest.mark.parametrize("spans, ranges, restated", [
    ([("2018-04-05", 500, 600)], {"2018-04-01": (1, 99), "2018-04-04": (400, 499)}, []),  # daily
    ([("2018-04-01", 1, 99)], {"2018-04-02": (5, 150)}, ["2018-04-02"]),  # late copies in D2
    ([("2018-04-03", 1, 99)], {"2018-04-02": (5, 150)}, []),  # an earlier day wins anyway
    ([("2018-04-01", 1, 99)], {"2018-04-02": (50, 150), "2018-04-03": (120, 130),
                               "2018-04-04": (200, 300)},
     ["2018-04-02", "2018-04-03"]),  # D2 restated reaches D3, not D4
])
def test_days_to_restate(spans, ranges, restated):
    assert dedup.days_to_restate(spans, ranges) == restated
