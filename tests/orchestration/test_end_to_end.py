"""The DAG end to end with the local backend: three logical dates on a small generated lake,
the middle one with no raw file. Checks the lake, the registry aliases, the scores and the report.

It runs what `make demo` runs (fraudops.orchestration.demo.run_demo), only smaller.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from fraudops.core import config, scored, storage
from fraudops.core.lake import Lake
from fraudops.core.platform import platform
from fraudops.model.splits import first_full_day
from fraudops.orchestration import demo
from spark_jobs.datasets import clean_days, day_range
from spark_jobs.marts import LOOKBACK_DAYS

pytestmark = pytest.mark.slow

MODEL = platform()["mlflow"]["model_name"]
# Day 55 is the first whose 10-day training window (ending 9 days before: 2 days of label delay,
# 7 of test) lies past the 37 warm-up days.
DATES = ["2018-05-26", "2018-05-27", "2018-05-28"]
MISSING = "2018-05-27"
TIMES: list[dict] = []  # seconds per step of each run, as the demo prints them


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e")
    args = demo.parse_args([
        "--home", str(home), "--customers", "400", "--terminals", "800", "--seed", "11",
        "--run-days", "55,56,57", "--missing", "1", "--defect-rate", "0.005",
        "--change-day", "-1", "--train-args", "--grid small --folds 1 --train-days 10 "
        "--delay-days 2 --fold-train-days 3 --fold-assess-days 2",
    ])
    rows = demo.run_demo(args, TIMES)
    return home, Lake(config.lake_root_in(home)), rows


def test_the_time_of_each_step_is_measured(demo_run):
    times = TIMES
    assert [t["date"] for t in times] == DATES
    for t in (times[0], times[2]):
        assert all(t[step] > 0 for step in demo.STEP_ORDER), t
        assert 0 <= t["other"] < t["total"]
    assert times[1]["train"] is None and times[1]["total"] > 0


def test_each_date_took_its_path(demo_run):
    _, _, rows = demo_run
    assert [r["date"] for r in rows] == DATES
    assert [r["dag_run"] for r in rows] == ["success"] * 3
    assert [r["path"] for r in rows] == [
        "trained", "day missing, skipped: no new file", "trained"]
    assert rows[0]["decision"] == "first_champion"
    assert [r["train"] for r in rows] == ["tune", "-", "refit"]
    assert rows[2]["decision"] in {"promoted", "rejected_policy", "rejected_gates"}


def test_every_arrived_row_is_clean_or_quarantined(demo_run):
    _, lake, rows = demo_run
    arrived = storage.list_files(lake.raw, ".txt")
    assert MISSING not in {Path(e.path).stem for e in arrived}
    raw_lines = sum(storage.read_bytes(e.path).count(b"\n") - 1 for e in arrived)
    clean_rows = sum(r["new_rows"] for r in rows)
    quarantined = sum(r["quarantined"] for r in rows)
    assert quarantined > 0
    assert clean_rows + quarantined == raw_lines
    days = clean_days(lake)
    assert days[0] == "2018-04-01" and days[-1] == DATES[-1] and MISSING not in days
    # A defective row may carry a date that is not its file's: it is quarantined, never a day.
    assert len(days) == 57


def test_registry_aliases_follow_the_decisions(demo_run):
    home, _, rows = demo_run
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / '.mlflow' / 'mlflow.db'}")
    versions = {str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")}
    assert versions == {"1", "2"}
    champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
    assert champion == rows[2]["champion"]
    if rows[2]["decision"] == "promoted":
        assert champion == "2"
        assert str(client.get_model_version_by_alias(MODEL, "previous").version) == "1"
    else:
        assert champion == "1"
    decision = client.get_model_version(MODEL, rows[2]["challenger"]).tags
    assert decision.get("fraudops.decision") == rows[2]["decision"]


def test_scores_use_the_champion_of_their_day(demo_run):
    _, lake, rows = demo_run
    per_day = storage.read_json(lake.clean_days)
    for row in (rows[0], rows[2]):
        scores = pd.read_parquet(f"{lake.scores}/tx_date={row['date']}")
        assert len(scores) == per_day[row["date"]]["rows"]
        assert set(scores["model_version"].astype(str)) == {row["champion"]} == {row["scored_with"]}
        assert scores["fraud_probability"].between(0, 1).all()
        assert sorted(scores["rank"]) == list(range(1, len(scores) + 1))
        alerts = pd.read_parquet(f"{lake.alerts}/tx_date={row['date']}")
        assert 0 < len(alerts) <= 100
    assert not storage.exists(f"{lake.scores}/tx_date={MISSING}")
    # Every arrived day past the warm-up is scored once: the first run scores its history.
    ledger = scored.ledger(lake)
    assert sorted(ledger) == [d for d in clean_days(lake) if d >= ledger_first(lake)]
    assert rows[0]["days_scored"] == len(day_range(ledger_first(lake), DATES[0]))
    assert rows[2]["days_scored"] == 1 and rows[2]["restated"] == 0
    assert scored.status(lake, clean_days(lake))["stale_scores"] == 0


def ledger_first(lake: Lake) -> str:
    """The first day past the warm-up (37 days after the first clean day)."""
    return first_full_day(clean_days(lake)[0], LOOKBACK_DAYS)


def test_report_shows_both_training_runs(demo_run):
    home, _, rows = demo_run
    page = home / "reports" / "index.html"
    text = page.read_text()
    pngs = sorted(p.name for p in page.parent.glob("*.png"))
    assert pngs and all(f'src="{name}"' in text for name in pngs)
    for row in (rows[0], rows[2]):
        assert row["date"] in text
