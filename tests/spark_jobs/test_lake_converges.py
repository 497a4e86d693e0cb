"""Whatever happened to the raw files and to the runs, the lake ends equal to a clean of its raw
files as they now are (issue 45, item 8).

The oracle is plain: copy raw/ (bytes and times) into a new lake root, clean it once, and
compare the two lakes: the clean rows, the quarantined lines, the days listed in
clean_days.json and each file's manifest outcome.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fraudops.core import faults, lease, rawfiles, rawformat, storage
from fraudops.core.lake import Lake
from spark_jobs import clean, datasets
from tests.paths import REPO
from tests.spark_jobs.rawlines import row, write_raw
from tests.spark_jobs.test_kills import _killed, unversioned

D1, D2, D3 = "2018-04-01", "2018-04-02", "2018-04-03"
# What a fresh clean decides about a file; the run, the time and the status say how it got there.
OUTCOME = ("md5", "size", "rows_in", "file_reason", "rows_clean", "quarantined")


def _at(day: str, hour: int, minute: int = 0) -> str:
    return f"{day} {hour:02d}:{minute:02d}:00"


def _rows(path: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    if not os.path.exists(path):
        return pd.DataFrame()
    df = pd.read_parquet(path).drop(columns=list(drop), errors="ignore")
    if df.empty:
        return pd.DataFrame()
    for column in df.columns:
        if isinstance(df[column].dtype, pd.CategoricalDtype):  # partition columns
            df[column] = df[column].astype(str)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def lake_contents(lake: Lake) -> dict:
    """What a reader of the lake can see: rows, quarantined lines, days listed, manifest."""
    manifest = storage.read_json(lake.manifest, default={}) or {}
    return {
        "clean": _rows(lake.clean),
        "quarantine": _rows(lake.quarantine, drop=("run_id",)),
        "clean_days": unversioned(storage.read_json(lake.clean_days, default={}) or {}),
        "manifest": {name: {k: entry.get(k) for k in OUTCOME} for name, entry in manifest.items()},
    }


def assert_equals_a_fresh_clean(spark, lake: Lake, tmp_path, until: str | None = None) -> None:
    """``lake`` equals a clean, into a new root, of the raw files ``lake`` holds now."""
    fresh = Lake(str(tmp_path / "fresh-clean"))
    shutil.rmtree(fresh.root, ignore_errors=True)
    shutil.copytree(lake.raw, fresh.raw)  # copy2: the same bytes and times
    clean.run(fresh, until, "reference", spark)
    got, want = lake_contents(lake), lake_contents(fresh)
    for key in want:
        if isinstance(want[key], pd.DataFrame):
            pd.testing.assert_frame_equal(got[key], want[key], obj=key)
        else:
            assert got[key] == want[key], key


def _write_bytes(lake: Lake, day: str, data: bytes) -> None:
    os.makedirs(lake.raw, exist_ok=True)
    with open(lake.raw_file(day), "wb") as handle:
        handle.write(data)


def test_a_day_replaced_by_its_header_loses_its_rows(spark, lake, tmp_path):
    write_raw(lake, D1, [row(1, _at(D1, 9)), row(2, _at(D1, 10))])
    write_raw(lake, D2, [row(3, _at(D2, 9)), row(4, _at(D2, 10)), "garbage"])
    clean.run(lake, None, "r1", spark)

    write_raw(lake, D2, [])  # withdrawn: delivered again as its header alone
    summary = clean.run(lake, None, "r2", spark)

    assert D2 in summary["changed_dates"]
    assert_equals_a_fresh_clean(spark, lake, tmp_path)


def test_a_day_delivered_after_its_late_duplicates_keeps_its_rows(spark, lake, tmp_path):
    """D2 holds late copies of D1's transactions 1 and 2 and arrives first; when D1 comes, the
    earliest occurrence (D1's) wins as it would have in order, and D2 is restated."""
    write_raw(lake, D2, [row(10, _at(D2, 8)), row(1, _at(D2, 9), amount="99.00"),
                         row(11, _at(D2, 10)), row(2, _at(D2, 11), fraud=1, scenario=1)])
    clean.run(lake, None, "r1", spark)
    write_raw(lake, D1, [row(1, _at(D1, 9)), row(2, _at(D1, 10)), row(3, _at(D1, 11))])
    summary = clean.run(lake, None, "r2", spark)

    assert set(summary["changed_dates"]) == {D1, D2}  # D2's marts move too
    assert_equals_a_fresh_clean(spark, lake, tmp_path)


def test_a_changed_day_frees_the_copies_it_no_longer_holds(spark, lake, tmp_path):
    """D1 is corrected without transaction 2: D2's copy of it, a duplicate until now, is the
    only occurrence left and becomes clean, as in a fresh clean."""
    write_raw(lake, D1, [row(1, _at(D1, 9)), row(2, _at(D1, 10))])
    write_raw(lake, D2, [row(3, _at(D2, 9)), row(2, _at(D2, 10))])
    clean.run(lake, None, "r1", spark)
    write_raw(lake, D1, [row(1, _at(D1, 9))])
    clean.run(lake, None, "r2", spark)
    assert_equals_a_fresh_clean(spark, lake, tmp_path)


def test_one_crcrlf_file_among_good_ones(spark, lake, tmp_path):
    """unix2dos applied twice: lines end in CR CR LF. The driver and Spark read it alike."""
    write_raw(lake, D1, [row(1, _at(D1, 9))])
    lines = [rawformat.RAW_HEADER, row(2, _at(D2, 9)), row(3, _at(D2, 10)), "garbage"]
    _write_bytes(lake, D2, "".join(f"{line}\r\r\n" for line in lines).encode())
    write_raw(lake, D3, [row(4, _at(D3, 9))])

    summary = clean.run(lake, None, "r1", spark)

    assert summary["rows_clean"] == 4 and summary["rows_quarantined"] == 1
    assert_equals_a_fresh_clean(spark, lake, tmp_path)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r\r\n"])
def test_line_endings_give_the_same_rows(spark, tmp_path, ending):
    got = {}
    lines = [rawformat.RAW_HEADER, row(1, _at(D1, 9)), rawformat.RAW_HEADER, "x,y"]
    lake = Lake(str(tmp_path / "lake"))
    _write_bytes(lake, D1, b"".join(line.encode() + ending for line in lines))
    summary = clean.run(lake, None, "r1", spark)
    got = (summary["rows_in"], summary["rows_clean"], summary["quarantined_by_reason"])
    assert got == (2, 1, {rawformat.TOO_FEW_FIELDS: 1})


def test_a_file_with_cr_line_ends_only_is_one_line_for_both(spark, lake):
    _write_bytes(lake, D1, f"{rawformat.RAW_HEADER}\r{row(1, _at(D1, 9))}\r".encode())
    summary = clean.run(lake, None, "r1", spark)
    assert summary["rows_in"] == 1
    assert summary["quarantined_by_reason"] == {rawfiles.BAD_HEADER: 1}


def test_a_file_with_a_line_too_long_is_quarantined_whole(spark, lake, tmp_path, monkeypatch):
    monkeypatch.setattr(rawfiles, "READ_CHUNK", 64)
    monkeypatch.setattr(rawfiles, "MAX_LINE_BYTES", 200)  # the header is 130 bytes
    write_raw(lake, D1, [row(1, _at(D1, 9))])
    write_raw(lake, D2, [row(2, _at(D2, 9)), row(3, _at(D2, 9)) + "," + "9" * 300])
    write_raw(lake, D3, [row(4, _at(D3, 9))])
    summary = clean.run(lake, None, "r1", spark)

    by_name = {f["name"]: f for f in summary["files"]}
    assert by_name[f"{D2}.txt"]["quarantined"] == {rawfiles.LINE_TOO_LONG: 2}
    assert summary["quarantined_files"] == [
        {"name": f"{D2}.txt", "day": D2, "reason": rawfiles.LINE_TOO_LONG, "rows_in": 2}]
    assert any(D2 in alert for alert in summary["alerts"])
    assert summary["rows_clean"] == 2 and summary["has_new_rows"]
    assert_equals_a_fresh_clean(spark, lake, tmp_path)


def test_a_file_spark_reads_otherwise_is_quarantined_whole(spark, lake, monkeypatch):
    """A file that changes between the driver's count and Spark's read (or any other
    disagreement): its day is emptied and alerted, the other files go on."""
    write_raw(lake, D1, [row(1, _at(D1, 9))])
    write_raw(lake, D2, [row(2, _at(D2, 9))])
    clean.run(lake, None, "r1", spark)
    write_raw(lake, D2, [row(2, _at(D2, 9)), row(5, _at(D2, 10))])
    write_raw(lake, D3, [row(6, _at(D3, 9))])
    real_inspect = rawfiles.inspect

    def miscounted(entry, status):
        raw = real_inspect(entry, status)
        if raw.day == D2:
            raw.rows_in += 1
        return raw
    monkeypatch.setattr(rawfiles, "inspect", miscounted)

    summary = clean.run(lake, None, "r2", spark)

    assert [f["name"] for f in summary["quarantined_files"]] == [f"{D2}.txt"]
    assert summary["quarantined_files"][0]["reason"] == rawfiles.UNACCOUNTABLE
    assert summary["alerts"] and summary["rows_clean"] == 1
    assert sorted(storage.read_json(lake.clean_days)) == [D1, D3]
    assert sorted(pd.read_parquet(lake.clean)["transaction_id"]) == [1, 6]


def test_a_run_killed_after_publishing_a_changed_day_then_the_file_restored(spark, lake,
                                                                            tmp_path):
    """D1 changes (same count, other labels and amounts); the run that cleans it dies after
    writing the day and clean_days.json, before the manifest. The producer sends the original
    again, and the retry must not take the day for done: the manifest knows those bytes."""
    write_raw(lake, D1, [row(1, _at(D1, 9)), row(2, _at(D1, 10))])
    write_raw(lake, D2, [row(3, _at(D2, 9))])
    clean.run(lake, None, "r1", spark)
    original = Path(lake.raw_file(D1)).read_bytes()
    write_raw(lake, D1, [row(1, _at(D1, 9), amount="55.00", fraud=1, scenario=2),
                         row(2, _at(D1, 10), amount="77.00")])

    _killed("spark_jobs.clean", lake, "r2", "clean.after_clean_days")
    _write_bytes(lake, D1, original)  # restored: the bytes the manifest recorded
    clean.run(lake, None, "r2", spark)  # the retry

    assert_equals_a_fresh_clean(spark, lake, tmp_path)


def _clean_rows(spark, lake: Lake) -> pd.DataFrame:
    """The clean rows as the steps read them (spark_jobs.datasets, the committed versions)."""
    days = datasets.clean_days(lake)
    if not days:
        return pd.DataFrame()
    rows = datasets.read_clean(spark, lake, days[0], days[-1]).toPandas()
    return rows.sort_values("transaction_id").reset_index(drop=True)


def test_a_run_killed_before_its_commit_leaves_readers_the_old_lake(spark, lake, tmp_path):
    """D1 is corrected (same ids, other amounts and labels) and D3 arrives; the run that cleans
    them dies after writing their clean rows, before its commit. Readers see the lake as it
    was, not half of the run; the retry publishes the days and collects what the dead run
    left, so that even a reader of the whole folder finds a fresh clean."""
    write_raw(lake, D1, [row(1, _at(D1, 9)), row(2, _at(D1, 10))])
    write_raw(lake, D2, [row(3, _at(D2, 9))])
    clean.run(lake, None, "r1", spark)
    before = _clean_rows(spark, lake)
    write_raw(lake, D1, [row(1, _at(D1, 9), amount="55.00", fraud=1, scenario=2),
                         row(2, _at(D1, 10), amount="77.00")])
    write_raw(lake, D3, [row(4, _at(D3, 9))])

    _killed("spark_jobs.clean", lake, "r2", "clean.between_clean_and_quarantine")

    assert datasets.clean_days(lake) == [D1, D2]
    pd.testing.assert_frame_equal(_clean_rows(spark, lake), before)
    clean.run(lake, None, "r2", spark)  # the retry
    assert sorted(_clean_rows(spark, lake)["tx_amount"]) == [10.0, 10.0, 55.0, 77.0]
    assert_equals_a_fresh_clean(spark, lake, tmp_path)


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def test_a_writer_paused_past_its_lease_while_another_takes_over(spark, lake, tmp_path,
                                                                 monkeypatch):
    """Run A plans D1 and D2 and is paused (SIGSTOP of its process group, its lease renewer and
    JVM included) before it writes; its lease expires. D2 is corrected and D3 arrives; run B
    takes the lease over and cleans them. A is resumed: it must write nothing, neither its
    stale D2 nor its snapshot of clean_days.json without D3."""
    write_raw(lake, D1, [row(1, _at(D1, 9))])
    write_raw(lake, D2, [row(2, _at(D2, 9)), row(3, _at(D2, 10))])
    env = {**os.environ, "PYTHONPATH": str(REPO), faults.STOP_AT_ENV: "clean.before_writes",
           lease.TTL_ENV: "3", "FRAUDOPS_SPARK_MASTER": "local[2]",
           "FRAUDOPS_SHUFFLE_PARTITIONS": "2"}
    a = subprocess.Popen(
        [sys.executable, "-m", "spark_jobs.clean", "--lake-root", lake.root, "--run-id", "a"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not _stopped(a.pid):
            assert a.poll() is None and time.monotonic() < deadline, a.stderr.read()[-3000:]
            time.sleep(0.5)
        write_raw(lake, D2, [row(2, _at(D2, 9), amount="12.00"), row(4, _at(D2, 11))])
        write_raw(lake, D3, [row(5, _at(D3, 9))])
        time.sleep(3.5)  # past A's lease
        monkeypatch.setenv(lease.WAIT_ENV, "30")
        clean.run(lake, None, "b", spark)
    finally:
        os.killpg(a.pid, signal.SIGCONT)
        _, err = a.communicate(timeout=300)

    assert a.returncode != 0 and "LeaseLost" in err, err[-3000:]
    assert storage.read_json(lake.run_summary("clean", "a")) is None
    assert_equals_a_fresh_clean(spark, lake, tmp_path)
