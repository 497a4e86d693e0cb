"""The synthetic data generator: the handbook's statistics and rules, the file format, and the
defects it injects on request (checked line by line against what it says it injected)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudops.core import storage
from fraudops.core.lake import Lake
from fraudops.simulator.generate import (
    DUPLICATE_FILE,
    ROW_DEFECTS,
    day_frame,
    format_rows,
    generate_lake,
    injected_defects_path,
    main,
    redeliver_day,
)
from fraudops.simulator.handbook import (
    SimulationParams,
    WorldChange,
    make_profiles,
    simulate,
    terminals_within_radius,
)
from tests.paths import REPO

# The delivered format, written out here on purpose (not imported): the files must match it.
HEADER = (
    "# tranaction_id | tx_datetime | customer_id | terminal_id | tx_amount | tx_time_seconds"
    " | tx_time_days | tx_fraud | tx_fraud_scenario"
)
ROW = re.compile(
    r"^(\d+),(\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2}):(\d{2}),(\d+),(\d+),(\d+\.\d{2}),(\d+),(\d+),"
    r"([01]),([0-3])$"
)
SMALL = dict(days=6, customers=400, terminals=800, seed=7)
SMALL_DAYS = [(dt.date(2018, 4, 1) + dt.timedelta(days=i)).isoformat() for i in range(6)]


def read_lines(lake: Lake, day: str) -> list[str]:
    return Path(lake.raw_file(day)).read_text().splitlines()


def day_names(lake: Lake) -> list[str]:
    return sorted(p.name for p in Path(lake.raw).iterdir())


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory) -> tuple[Lake, dict]:
    lake = Lake(str(tmp_path_factory.mktemp("small") / "lake"))
    return lake, generate_lake(lake, **SMALL)


@pytest.fixture(scope="module")
def defect_lake(tmp_path_factory) -> tuple[Lake, dict, dict]:
    lake = Lake(str(tmp_path_factory.mktemp("defects") / "lake"))
    summary = generate_lake(lake, **SMALL, defect_rate=0.05)
    return lake, summary, json.loads(Path(injected_defects_path(lake)).read_text())


# --- command line -------------------------------------------------------------------------------


def test_help_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "fraudops.simulator.generate", "--help"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    for option in ("--start-date", "--days", "--customers", "--terminals", "--radius", "--seed",
                   "--lake-root", "--defect-rate", "--redeliver"):
        assert option in result.stdout


def test_main_writes_the_files_and_prints_the_summary(tmp_path, capsys):
    root = tmp_path / "lake"
    main(["--lake-root", str(root), "--start-date", "2019-08-22", "--days", "2",
          "--customers", "50", "--terminals", "100", "--seed", "1"])
    summary = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in (root / "raw").iterdir()) == ["2019-08-22.txt", "2019-08-23.txt"]
    assert summary["transactions"] == summary["data_lines"] > 0
    assert summary["first_day"] == "2019-08-22" and summary["last_day"] == "2019-08-23"


def test_lake_root_defaults_to_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FRAUDOPS_LAKE_ROOT", str(tmp_path / "envlake"))
    main(["--days", "1", "--customers", "20", "--terminals", "40"])
    assert (tmp_path / "envlake" / "raw" / "2018-04-01.txt").exists()


def test_invalid_parameters_are_refused(tmp_path):
    with pytest.raises(ValueError):
        generate_lake(Lake(str(tmp_path)), days=1, defect_rate=1.5)
    with pytest.raises(ValueError):
        SimulationParams(radius=0)
    with pytest.raises(SystemExit):
        main(["--start-date", "2018-13-01"])


# --- the handbook's simulation ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_handbook_parameters_give_the_handbook_dataset(seed):
    """5,000 customers, 10,000 terminals, 183 days, r=5: the handbook reports 1,754,155
    transactions, 0.84% fraud and 973 / 9,077 / 4,631 frauds of scenarios 1 / 2 / 3."""
    params = SimulationParams(start_date=dt.date(2018, 4, 1), days=183, customers=5000,
                              terminals=10000, radius=5, seed=seed)
    total, by_scenario, zero_amounts = 0, np.zeros(4, dtype=np.int64), 0
    for day in simulate(params):
        total += day.size
        by_scenario += np.bincount(day.fraud_scenario, minlength=4)
        zero_amounts += np.count_nonzero(day.amount_cents == 0)
    assert abs(total / 1_754_155 - 1) < 0.05
    # The handbook rounds a few amounts to 0.00; they are valid transactions and stay 0.00.
    assert 0 < zero_amounts < total / 10_000
    assert 0.0070 <= by_scenario[1:].sum() / total <= 0.0100
    for scenario, handbook in ((1, 973), (2, 9077), (3, 4631)):
        assert abs(by_scenario[scenario] / handbook - 1) < 0.25, (scenario, by_scenario)


def test_terminals_within_radius_match_brute_force():
    rng = np.random.default_rng(3)
    customers, terminals = rng.uniform(0, 100, (300, 2)), rng.uniform(0, 100, (700, 2))
    customers[:4] = [[0, 0], [99.99, 99.99], [0, 99.99], [50, 50]]  # corners and grid lines
    for radius in (0.9, 5, 7.3, 40, 250):
        offsets, ids = terminals_within_radius(customers, terminals, radius)
        distance = np.sqrt(((customers[:, None, :] - terminals[None, :, :]) ** 2).sum(axis=2))
        for c in range(len(customers)):
            expected = np.flatnonzero(distance[c] < radius)
            assert ids[offsets[c]:offsets[c + 1]].tolist() == expected.tolist(), (radius, c)


def test_transactions_follow_the_profiles():
    params = SimulationParams(days=40, customers=300, terminals=3000, radius=5, seed=5)
    profiles = make_profiles(params)
    assert profiles.mean_amount.min() >= 5 and profiles.mean_amount.max() < 100
    assert profiles.mean_nb_tx_per_day.min() >= 0 and profiles.mean_nb_tx_per_day.max() < 4
    counts = np.zeros(params.customers)
    for day in simulate(params, profiles):
        assert np.all(np.diff(day.seconds_of_day) >= 0)  # sorted by time within the day
        assert day.seconds_of_day.min() > 0 and day.seconds_of_day.max() < 86_400
        for c, t in zip(day.customer_id, day.terminal_id):  # each on one of its own terminals
            lo, hi = profiles.terminal_offsets[c], profiles.terminal_offsets[c + 1]
            assert t in profiles.terminal_ids[lo:hi]
        assert day.amount_cents.min() >= 0  # a negative draw is redrawn, as in the handbook
        counts += np.bincount(day.customer_id, minlength=params.customers)
    # About 97% of the Poisson draws fall inside (0, 86400) and are kept, as in the handbook.
    ratio = counts.sum() / (profiles.mean_nb_tx_per_day.sum() * params.days)
    assert 0.94 < ratio < 0.99


def test_customers_without_terminals_make_no_transactions():
    params = SimulationParams(days=10, customers=500, terminals=30, radius=3, seed=2)
    profiles = make_profiles(params)
    lonely = np.flatnonzero(profiles.terminals_per_customer == 0)
    assert len(lonely) > 100  # 30 terminals, r=3: most customers have none
    for day in simulate(params, profiles):
        assert not np.isin(day.customer_id, lonely).any()


def test_fraud_scenarios_follow_the_handbook_rules():
    params = SimulationParams(days=60, customers=600, terminals=1200, radius=8, seed=11)
    days = list(simulate(params))
    opened_t = [set(d.terminals_compromised.tolist()) for d in days]
    opened_c = [d.customers_compromised.tolist() for d in days]
    exposed = picked = 0
    for d in days:
        assert len(opened_t[d.index]) == 2 and len(set(opened_c[d.index])) == 3
        active_t = set().union(*opened_t[max(0, d.index - 27): d.index + 1])  # 28 days
        active_c = Counter(c for day in opened_c[max(0, d.index - 13): d.index + 1] for c in day)
        s = d.fraud_scenario
        at_compromised = np.isin(d.terminal_id, list(active_t))
        of_compromised = np.isin(d.customer_id, list(active_c))
        # Scenario 3 overrides 2, which overrides 1; 1 is judged on the amount before x5.
        assert np.all((s == 3) <= of_compromised)
        assert np.array_equal(s == 2, at_compromised & (s != 3))
        assert np.all(d.amount_cents[s == 1] > 22_000)
        assert np.all(d.amount_cents[s == 0] <= 22_000)
        assert np.all(d.amount_cents[s == 3] % 5 == 0)
        assert np.array_equal(d.tx_fraud, (s > 0).astype(np.int8))
        windows = np.array([active_c[c] for c in d.customer_id[of_compromised]])
        exposed += windows.sum()
        picked += np.count_nonzero(s[of_compromised] == 3)
    # A third per open window: 1 - (2/3)^k for a customer in k windows, mostly k = 1.
    assert 0.27 < picked / exposed < 0.37


def test_simulation_is_a_pure_function_of_the_seed_and_a_stable_prefix():
    def stream(days, seed):
        return [format_rows(d) for d in simulate(SimulationParams(days=days, customers=200,
                                                                  terminals=400, seed=seed))]

    assert stream(5, seed=3) == stream(5, seed=3)
    assert stream(8, seed=3)[:5] == stream(5, seed=3)  # more days never change the first ones
    assert stream(5, seed=3) != stream(5, seed=4)


# --- the files ----------------------------------------------------------------------------------


def test_one_file_per_day_with_the_exact_header(small_lake):
    lake, summary = small_lake
    assert day_names(lake) == [f"{d}.txt" for d in SMALL_DAYS]
    for day in SMALL_DAYS:
        raw = Path(lake.raw_file(day)).read_bytes()
        assert raw.startswith(HEADER.encode() + b"\n") and raw.endswith(b"\n")
        assert b"\r" not in raw and b'"' not in raw
    assert summary["files"] == 6


def test_rows_are_well_formed_and_self_consistent(small_lake):
    lake, summary = small_lake
    ids, rows = [], 0
    for index, day in enumerate(SMALL_DAYS):
        for line in read_lines(lake, day)[1:]:
            m = ROW.match(line)
            assert m, line
            tx_id, date, hh, mm, ss, _, _, amount, seconds, days, fraud, scenario = m.groups()
            assert date == day and int(days) == index
            assert int(seconds) == index * 86_400 + int(hh) * 3600 + int(mm) * 60 + int(ss)
            assert float(amount) >= 0 and (fraud == "1") == (scenario != "0")
            if float(amount) > 220:
                assert fraud == "1"
            ids.append(int(tx_id))
            rows += 1
    assert ids == list(range(len(ids)))  # global, increasing, no gaps, from 0
    assert rows == summary["transactions"] == summary["data_lines"]


def test_files_hold_exactly_the_simulated_days(small_lake):
    lake, _ = small_lake
    params = SimulationParams(**SMALL)
    for day in simulate(params):
        expected = day_frame(day)
        read = pd.read_csv(lake.raw_file(day.date.isoformat()), skiprows=1, header=None,
                           names=list(expected.columns), parse_dates=["tx_datetime"])
        read["tx_datetime"] = read["tx_datetime"].astype(expected["tx_datetime"].dtype)
        pd.testing.assert_frame_equal(read, expected, check_dtype=False)


def test_same_seed_gives_the_same_bytes(tmp_path, small_lake):
    lake, _ = small_lake
    again = Lake(str(tmp_path / "again"))
    generate_lake(again, **SMALL)
    for name in day_names(lake):
        assert (Path(again.raw) / name).read_bytes() == (Path(lake.raw) / name).read_bytes()
    other = Lake(str(tmp_path / "other"))
    generate_lake(other, **{**SMALL, "seed": 8})
    assert (Path(other.raw) / day_names(lake)[0]).read_bytes() != (
        Path(lake.raw) / day_names(lake)[0]).read_bytes()


def test_without_defects_the_record_says_nothing_was_injected(small_lake):
    lake, summary = small_lake
    injected = json.loads(Path(injected_defects_path(lake)).read_text())
    assert set(injected["counts"].values()) == {0} and summary["defects"] == injected["counts"]


# --- defects ------------------------------------------------------------------------------------

NUMERIC = (0, 2, 3, 4, 5, 6, 7, 8)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def defect_of(line: str, file_day: str) -> str | None:
    """An independent reading of what is wrong with a line (first rule broken), or None."""
    fields = line.split(",")
    if len(fields) != 9:
        return "too_few_fields" if len(fields) < 9 else "too_many_fields"
    if "" in fields:
        return "empty_field"
    try:
        numbers = {i: float(fields[i]) for i in NUMERIC}
    except ValueError:
        return "non_numeric"
    try:
        assert TIMESTAMP.match(fields[1])
        when = dt.datetime.strptime(fields[1], "%Y-%m-%d %H:%M:%S")
    except (AssertionError, ValueError):
        return "bad_timestamp"
    if when.date().isoformat() != file_day:
        return "wrong_day"
    if numbers[2] < 0 or numbers[3] < 0:
        return "negative_id"
    if numbers[4] < 0:
        return "negative_amount"
    return None


def test_defect_counts_follow_the_rate(defect_lake):
    _, summary, injected = defect_lake
    counts = injected["counts"]
    assert set(counts) == set(ROW_DEFECTS) | {DUPLICATE_FILE}
    row_defects = sum(counts[k] for k in ROW_DEFECTS)
    expected = 0.05 * summary["transactions"]
    assert abs(row_defects - expected) < 5 * math.sqrt(expected)
    for kind in ROW_DEFECTS:  # uniform over the kinds
        assert abs(counts[kind] - expected / 9) < 5 * math.sqrt(expected / 9), kind
    assert counts[DUPLICATE_FILE] == math.ceil(0.05 * 6) == len(injected["files"][DUPLICATE_FILE])
    assert summary["data_lines"] == summary["transactions"] + counts["duplicate_id"]
    for kind, records in injected["rows"].items():
        assert len(records) == counts[kind]


def test_every_injected_line_is_defective_as_recorded(defect_lake):
    lake, _, injected = defect_lake
    lines = {day: read_lines(lake, day) for day in SMALL_DAYS}
    for file_lines in lines.values():
        assert file_lines[0] == HEADER
    for kind, records in injected["rows"].items():
        for record in records:
            day = record["file"].removesuffix(".txt")
            assert record["line"] in lines[day], record
            if kind == "duplicate_id":
                assert defect_of(record["line"], day) is None  # a valid row, seen before
                copies = sum(
                    1 for d in SMALL_DAYS for line in lines[d][1:]
                    if line.split(",")[0] == str(record["transaction_id"])
                )
                assert copies == 2, record
            else:
                assert defect_of(record["line"], day) == kind, record


def test_clean_rows_stay_clean_and_unchanged(defect_lake, small_lake):
    lake, _, injected = defect_lake
    clean_lake, _ = small_lake  # same seed and size, no defects
    damaged = {r["transaction_id"] for kind, recs in injected["rows"].items() for r in recs
               if kind != "duplicate_id"}
    recorded = Counter((r["file"], r["line"]) for recs in injected["rows"].values() for r in recs)
    for day in SMALL_DAYS:
        name = f"{day}.txt"
        left = Counter(read_lines(lake, day)[1:])
        left.subtract({line: n for (f, line), n in recorded.items() if f == name})
        left = +left
        expected = [line for line in read_lines(clean_lake, day)[1:]
                    if int(line.split(",")[0]) not in damaged]
        assert sorted(left.elements()) == sorted(expected)
        assert all(defect_of(line, day) is None for line in expected)


def test_defects_are_deterministic(tmp_path, defect_lake):
    lake, _, injected = defect_lake
    again = Lake(str(tmp_path / "again"))
    generate_lake(again, **SMALL, defect_rate=0.05)
    assert json.loads(Path(injected_defects_path(again)).read_text()) == injected
    for day in SMALL_DAYS:
        assert read_lines(again, day) == read_lines(lake, day)


def test_redelivery_rewrites_the_same_bytes(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    generate_lake(lake, days=2, customers=30, terminals=60)
    path = Path(lake.raw_file("2018-04-02"))
    before, stat = path.read_bytes(), path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))
    old_mtime = path.stat().st_mtime_ns
    main(["--lake-root", lake.root, "--redeliver", "2018-04-02"])
    assert path.read_bytes() == before and path.stat().st_mtime_ns > old_mtime
    assert redeliver_day(lake, dt.date(2018, 4, 1)) == lake.raw_file("2018-04-01")


def test_generates_into_s3(tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        monkeypatch.setenv("FRAUDOPS_S3_ENDPOINT", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="lake")
        storage._s3.cache_clear()
        lake = Lake("s3a://lake/root")
        summary = generate_lake(lake, days=2, customers=40, terminals=80, defect_rate=0.2)
        local = Lake(str(tmp_path / "local"))
        generate_lake(local, days=2, customers=40, terminals=80, defect_rate=0.2)
        for day in ("2018-04-01", "2018-04-02"):
            assert storage.read_bytes(lake.raw_file(day)) == Path(local.raw_file(day)).read_bytes()
        assert storage.read_json(injected_defects_path(lake))["counts"] == summary["defects"]
    finally:
        storage._s3.cache_clear()
        server.stop()


@pytest.mark.slow
def test_the_cleaning_job_quarantines_each_injected_line_with_its_kind(tmp_path):
    """The contract with spark_jobs.clean: a defect kind is the reason the cleaner gives."""
    from spark_jobs import clean
    from spark_jobs.session import get_spark

    lake = Lake(str(tmp_path / "lake"))
    generate_lake(lake, days=4, customers=300, terminals=600, seed=3, defect_rate=0.08)
    injected = storage.read_json(injected_defects_path(lake))
    spark = get_spark("test-generate")
    summary = clean.run(lake, None, "contract", spark)
    quarantined = spark.read.parquet(lake.quarantine).select("source_file", "line", "reason")
    got = Counter((r.source_file, r.line, r.reason) for r in quarantined.collect())
    want = Counter((r["file"], r["line"], kind)
                   for kind, records in injected["rows"].items() for r in records)
    assert got == want
    assert summary["rows_quarantined"] == sum(injected["counts"][k] for k in ROW_DEFECTS)


# --- a change of the world (off by default) -------------------------------------------------------

# SMALL's files, without and with defects, as the generator writes them with no change of the
# world (computed on main's code without the option; the defect digest follows main's negative-
# amount defects): with the option off, the output must stay byte for byte the same. SHA-256
# digests of generated files, not credentials (hence the secrets scan's allowlist pragma).
STEADY_DIGESTS = {
    "small": "2281802c5c428d86b9f58ad64bce5f527bfe93a58877ea162fdfad0738835a0b",  # pragma: allowlist secret
    "defects": "a595eb3638345c4eec30be181b08dda49857744bcf87cccff69d8bc5c6929b7f",  # pragma: allowlist secret
}


def lake_digest(lake: Lake) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(lake.raw).iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_the_world_does_not_change_unless_asked(small_lake, defect_lake):
    assert SimulationParams().change is None
    assert small_lake[1]["change"] is None
    assert lake_digest(small_lake[0]) == STEADY_DIGESTS["small"]
    assert lake_digest(defect_lake[0]) == STEADY_DIGESTS["defects"]


def card_tests(day) -> np.ndarray:
    """The day's frauds shaped like the change's card testing: small amounts, 01:00 to 05:00."""
    change = WorldChange(0)
    return ((day.fraud_scenario > 0)
            & (day.amount_cents <= change.testing_cents[1])
            & (day.seconds_of_day >= change.testing_seconds[0])
            & (day.seconds_of_day <= change.testing_seconds[1]))


def test_the_world_changes_from_the_given_day_on():
    steady = SimulationParams(days=40, customers=600, terminals=1200, seed=4)
    change = WorldChange(day=25)
    before, after = list(simulate(steady)), list(simulate(dataclasses.replace(steady,
                                                                              change=change)))
    for a, b in zip(before[:25], after[:25]):  # the days before it are the same days
        for field in ("transaction_id", "seconds_of_day", "customer_id", "terminal_id",
                      "amount_cents", "fraud_scenario"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (a.index, field)
    # From the day on: card testing on compromised cards, a rare shape before it.
    tests_before = sum(int(card_tests(d).sum()) for d in before[25:])
    tests_after = [int(card_tests(d).sum()) for d in after[25:]]
    assert min(tests_after) > 0 and sum(tests_after) > 30 * max(tests_before, 1)
    labels = np.concatenate([d.fraud_scenario[card_tests(d)] for d in after[25:]])
    assert np.mean(labels == 3) > 0.95  # labelled as compromised cards (a few are scenario 2)
    # ... and customers shop pace_factor times as often (card tests aside).
    genuine = sum(int((~card_tests(d)).sum()) for d in after[25:])
    assert abs(genuine / sum(d.size for d in before[25:]) / change.pace_factor - 1) < 0.05


def test_the_change_is_an_option_of_the_command(tmp_path, capsys):
    root = tmp_path / "lake"
    main(["--lake-root", str(root), "--days", "6", "--customers", "400", "--terminals", "800",
          "--seed", "7", "--change-day", "4"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["change"]["day"] == "2018-04-05"
    steady = Lake(str(tmp_path / "steady"))
    generate_lake(steady, **SMALL)
    names = day_names(steady)
    assert names == sorted(p.name for p in (root / "raw").iterdir())
    same = [(root / "raw" / n).read_bytes() == (Path(steady.raw) / n).read_bytes() for n in names]
    assert same == [True, True, True, True, False, False]
    with pytest.raises(ValueError):
        WorldChange(day=-1)
