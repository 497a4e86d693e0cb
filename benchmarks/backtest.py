"""`make backtest`: the retraining loop on the world's clock, through the steps' own code.

    python -m benchmarks.backtest                 # about 65 live days, .bench/backtest.json

Generates a lake into a producer folder, then delivers its day files into the lake's raw/ on a
simulated clock: day D's file normally lands during D+1, before the arrival deadline; one lands
hours after its deadline, one two days late, two days land together, one day is corrected (sent
again with rows removed and amounts changed) days after it was scored, one file is sent again
unchanged; the world changes (docs/data.md) inside the timeline. The history before the first
run (the lake's first --first-run-day days) is there when the platform starts.

The run for D fires when the deployed timetable fires it (fraudops.orchestration.settings and
timing: @daily, at the end of D), waits for raw/D.txt as the DAG's sensor does (a look every 10
minutes until the arrival deadline, FRAUDOPS_ARRIVAL_DEADLINE_HOURS), then follows the DAG's
branches: no new file ends on no_new_data, clean without new valid rows on no_new_rows, else
features, train, promote (production gates, policy `ci`) and score, each called through its
module's main() with the command line fraudops.core.steps gives it, in this one process with one
Spark session and a local MLflow SQLite store in --workdir. Runs never overlap (max_active_runs=1):
each is assumed to end before the next one fires.

Economies, so that the whole run can stay within 20 minutes on a 2-core machine: a smaller
simulated population than the demo's (--customers, --terminals), tunings on the small grid
(--grid small: one candidate per family, so the configuration that serves is a small one, not
the production grid's), 2 shuffle partitions, and the report step once, at the end, instead of
after every run. Daily refits, the weekly and drift tunings, the gates and the promotion policy
(`ci`) are production's.

After the timeline the loop is judged against the first champion never replaced (judge): the
live days whose labels matured by the last run are scored again by that first version with the
score step's own code (spark_jobs.score.score_days) into --workdir/never-replaced, once, from
the marts the loop's standing scores read; both are measured as the score step measures served
quality (spark_jobs.served: AP of the day's scores, card precision@100 of its alert list), and
the loop's figures are checked against what its score steps recorded in the lake.

Writes --output (.bench/backtest.json): per-day rows (when the file arrived, which run cleaned
it, which run scored it and with which model version, its restatements, and on matured days the
served AP and CP@100 of the loop and of the never-replaced model) and per-run rows (when the run
fired and went, its path, training path, decision, seconds), with the ledger's counts
(fraudops.core.scored.status): the bar is days_scored == days_arrived and stale_scores == 0;
and the means before and after the change of the world (loop_ap_before_change,
static_ap_before_change, ... loop_cp100_after_change) with issue 44's bars in served_bars. And
--plot (.bench/backtest.png).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fraudops.core import config, storage
from fraudops.core.lake import Lake, shift
from fraudops.orchestration import timing

log = logging.getLogger("benchmarks.backtest")

START = dt.date(2018, 4, 1)  # the simulator's first day (SimulationParams.start_date)
# As dags/fraud_retraining.ARRIVAL_POKE_INTERVAL (tests/ check they agree): the DAG file is not
# imported here, it needs Airflow.
POKE_INTERVAL = dt.timedelta(minutes=10)
BAR_SECONDS = 20 * 60

# Kinds of delivery.
HISTORY = "history"  # before the first run: the lake the platform starts from
ON_TIME = "on_time"  # during the next day, before the arrival deadline
LATE = "late"  # after its deadline
TOGETHER = "together"  # with the next day's file
CORRECTION = "correction"  # sent again with changed rows, after its day was scored
RESEND = "resend"  # sent again unchanged (a new file time, the same bytes)


@dataclass(frozen=True)
class Delivery:
    day: str  # the file's day
    at: dt.datetime  # when it lands in raw/ (UTC)
    kind: str


@dataclass(frozen=True)
class Events:
    """Where the irregular deliveries fall: offsets from the first live day (the day after the
    first run's)."""

    late_hours: int = 5  # its file lands 5 h after its deadline; an unchanged resend just before
    late_days: int = 12  # its file lands two days late
    together: int = 20  # its file lands with the next day's
    corrected: int = 26  # sent again, corrected, --correction-after days later
    correction_after: int = 4

    def offsets(self) -> list[int]:
        return [self.late_hours, self.late_days, self.together, self.corrected]


@dataclass
class Run:
    """One DAG run as the clock makes it: when it fired, when its sensor let it go, what of its
    own day it found, and (planned) the deliveries it picks up."""

    day: str
    fired: dt.datetime
    went: dt.datetime
    own_file: str  # timing.ARRIVED | timing.MISSING
    picks_up: list[Delivery] = field(default_factory=list)


def day_of(index: int) -> str:
    return (START + dt.timedelta(days=index)).isoformat()


def plan_deliveries(first_run: int, live_days: int, deadline: dt.timedelta, events: Events,
                    seed: int) -> list[Delivery]:
    """Every delivery of the timeline, in time order: the history (days before the first run's)
    before the first run fires, then one file a day, and the events."""
    if max(events.offsets()) + events.correction_after >= live_days - 1:
        raise ValueError(f"the events ({events}) must lie inside the {live_days} live days")
    offsets = sorted(events.offsets())
    if offsets[0] < 1 or any(b - a < 3 for a, b in zip(offsets, offsets[1:])):
        raise ValueError(f"the events ({events}) must lie at least three days apart, from "
                         "the second live day on")
    rng = random.Random(seed)
    first_live = first_run + 1
    opened = timing.day_end(day_of(first_run - 1)) + dt.timedelta(hours=1)
    out = [Delivery(day_of(i), opened, HISTORY) for i in range(first_run)]
    usual = max(deadline - dt.timedelta(minutes=30), dt.timedelta(0))
    for i in range(first_run, first_live + live_days):
        day = day_of(i)
        out.append(Delivery(day, timing.day_end(day) + usual * rng.uniform(0.05, 1.0), ON_TIME))
    by_day = {d.day: d for d in out if d.kind == ON_TIME}

    def move(offset: int, at: dt.datetime, kind: str) -> None:
        day = day_of(first_live + offset)
        by_day[day] = Delivery(day, at, kind)

    late = day_of(first_live + events.late_hours)
    move(events.late_hours, arrival_deadline(late, deadline) + dt.timedelta(hours=5), LATE)
    before = day_of(first_live + events.late_hours - 1)
    resend = Delivery(before, timing.day_end(late) + deadline / 2, RESEND)
    two_late = day_of(first_live + events.late_days)
    move(events.late_days, timing.day_end(two_late) + dt.timedelta(days=2, hours=1), LATE)
    pair = day_of(first_live + events.together + 1)
    move(events.together, by_day[pair].at, TOGETHER)
    fixed = day_of(first_live + events.corrected)
    correction = Delivery(fixed, timing.day_end(fixed) + dt.timedelta(
        days=events.correction_after, hours=13), CORRECTION)
    out = [d for d in out if d.kind == HISTORY] + list(by_day.values()) + [resend, correction]
    return sorted(out, key=lambda d: (d.at, d.day))


def arrival_deadline(day: str, deadline: dt.timedelta) -> dt.datetime:
    return timing.arrival_deadline(day, deadline)


def sensor_goes(day: str, fired: dt.datetime, deliveries: list[Delivery],
                deadline: dt.timedelta, poke: dt.timedelta = POKE_INTERVAL) -> tuple[dt.datetime, str]:
    """When the DAG's wait_for_raw_file lets the run for ``day`` go, and what it found: it looks
    when the run fires, then every ``poke``, with the DAG's own rule (timing.arrival_state)."""
    limit = arrival_deadline(day, deadline)
    arrivals = [d.at for d in deliveries if d.day == day]
    now = fired
    while True:
        state = timing.arrival_state(any(at <= now for at in arrivals), now, limit)
        if state != timing.WAITING:
            return now, state
        now += poke


def plan_runs(days: list[str], fires: dict[str, dt.datetime], deliveries: list[Delivery],
              deadline: dt.timedelta, poke: dt.timedelta = POKE_INTERVAL) -> list[Run]:
    """The runs of ``days`` in order, and which deliveries each picks up: a delivery is cleaned
    by the first run that goes after it landed and whose day is not before the file's day (the
    DAG cleans the files that arrived by its day)."""
    runs = []
    for day in days:
        went, state = sensor_goes(day, fires[day], deliveries, deadline, poke)
        runs.append(Run(day, fires[day], went, state))
    taken: set[int] = set()
    for run in runs:
        for i, delivery in enumerate(deliveries):
            if i not in taken and delivery.at <= run.went and delivery.day <= run.day:
                run.picks_up.append(delivery)
                taken.add(i)
    return runs


def rule_fires(days: list[str]) -> dict[str, dt.datetime]:
    """When the run for each day fires under the rule the DAG's timetable follows (the end of
    the day, timing.day_end); deployed_fires asks the timetable itself."""
    return {day: timing.day_end(day) for day in days}


def deployed_fires(first: str, last: str, home: Path) -> dict[str, dt.datetime]:
    """When the deployed timetable (settings: FRAUDOPS_SCHEDULE, timing.timetable) fires the run
    of each logical day from ``first`` to ``last``: asked in a child process, which imports
    Airflow with its home in ``home`` (it configures logging and a database of its own)."""
    env = {**os.environ, "AIRFLOW_HOME": str(home / ".airflow")}
    code = f"from benchmarks.backtest import _print_fires; _print_fires({first!r}, {last!r})"
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, text=True,
                         capture_output=True).stdout
    return {day: dt.datetime.fromisoformat(at) for day, at in json.loads(out.splitlines()[-1]).items()}


def _print_fires(first: str, last: str) -> None:
    from airflow.timetables.base import TimeRestriction

    from fraudops.orchestration.settings import SCHEDULE_ENV, load_settings

    settings = load_settings()
    if settings.schedule is None:
        raise SystemExit(f"{SCHEDULE_ENV} says no schedule: nothing fires on its own")
    table = timing.timetable(settings.schedule, SCHEDULE_ENV)
    earliest = dt.datetime.combine(dt.date.fromisoformat(first), dt.time(), dt.UTC)
    restriction = TimeRestriction(earliest=earliest, latest=None, catchup=True)
    fires, interval = {}, None
    while True:
        info = table.next_dagrun_info(last_automated_data_interval=interval,
                                      restriction=restriction)
        day = info.data_interval.start.date().isoformat()
        if day > last:
            break
        fires[day] = info.run_after.isoformat()
        interval = info.data_interval
    print(json.dumps(fires))


# --- the live timeline -------------------------------------------------------------------------

def deliver(producer: Lake, lake: Lake, delivery: Delivery, corrected: dict[str, bytes]) -> None:
    """Land a delivery in raw/ as an upload does: a new file time, the whole file at once."""
    data = corrected[delivery.day] if delivery.kind == CORRECTION else Path(
        producer.raw_file(delivery.day)).read_bytes()
    target = Path(lake.raw_file(delivery.day))
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, target)


def corrected_file(data: bytes, every: int = 20) -> bytes:
    """The day's file as its producer corrects it: every ``every``-th row withdrawn, the amount
    of the row after it changed by a cent-exact 10%."""
    header, *rows = data.decode().splitlines(keepends=True)
    out = [header]
    for i, row in enumerate(rows):
        if i % every == 0:
            continue
        fields = row.rstrip("\n").split(",")
        if i % every == 1 and len(fields) == 9 and fields[4].replace(".", "", 1).isdigit():
            fields[4] = f"{round(float(fields[4]) * 1.1, 2):.2f}"
            row = ",".join(fields) + "\n"
        out.append(row)
    return "".join(out).encode()


def scheduled_run_id(run: Run) -> str:
    """As Airflow names a scheduled run: by its logical date."""
    return f"scheduled__{run.day}T00:00:00+00:00"


class Loop:
    """The DAG's branches over the steps' mains, in this process."""

    def __init__(self, lake: Lake, extra_args: dict[str, tuple[str, ...]]) -> None:
        import importlib

        from fraudops.core.steps import STEPS

        self.lake, self.extra_args = lake, extra_args
        # Every step's code now, once: the whole timeline runs one version of it.
        self.modules = {name: importlib.import_module(step.module)
                        for name, step in STEPS.items()}

    def step(self, name: str, ctx) -> tuple[float, dict]:
        from fraudops.core.steps import STEPS

        started = time.perf_counter()
        summary = self.modules[name].main(STEPS[name].args(ctx))
        return time.perf_counter() - started, summary

    def run(self, run: Run) -> dict:
        from fraudops.core.steps import RunContext
        from fraudops.orchestration.arrivals import clean_summary, new_raw_files

        ctx = RunContext(run.day, scheduled_run_id(run), self.lake.root,
                         extra_args=self.extra_args)
        row: dict = {"day": run.day, "fired": run.fired.isoformat(),
                     "went": run.went.isoformat(), "own_file": run.own_file,
                     "run_id": ctx.safe_run_id, "seconds": {}}
        new = new_raw_files(self.lake, run.day)
        row["new_files"] = sorted(new)
        if not new:
            row["path"] = "no_new_data"
        else:
            row["seconds"]["clean"], cleaned = self.step("clean", ctx)
            summary = clean_summary(self.lake, ctx.safe_run_id)
            row["cleaned_days"] = sorted({f["day"] for f in cleaned["files"]})
            row["rows_clean"] = summary["rows_clean"]
            if not (summary["has_new_rows"] or summary.get("features_pending")):
                row["path"] = "no_new_rows"
            else:
                row["path"] = "trained"
                for name in ("features", "train", "promote", "score"):
                    row["seconds"][name], out = self.step(name, ctx)
                    if name == "train":
                        row.update(train_path=out["path"], challenger=out["model_version"],
                                   test_ap=out["test_metrics"]["average_precision"])
                    elif name == "promote":
                        row.update(decision=out["decision"],
                                   champion=out.get("champion_version"))
                    elif name == "score":
                        row.update(scored_with=str(out["model_version"]),
                                   scored_days=out["days"], restated=sorted(out["restated"]),
                                   drift_alerts=out.get("drift_alerts", []))
        if run.own_file == timing.MISSING:
            row["path"] += ", day_missing"
        row["total_s"] = round(sum(row["seconds"].values()), 1)
        row["seconds"] = {k: round(v, 1) for k, v in row["seconds"].items()}
        return row


# --- the loop judged against a model never replaced ---------------------------------------------

STATIC_RUN = "backtest-static"
# issue 44's bars: after the change the loop's mean served AP beats the never-replaced model's
# by this much (relative) and its card precision@k is not lower by more than the margin; before
# it, the loop is not lower than the never-replaced model by more than the margin on either.
AP_GAIN_AFTER = 0.20
CP_MARGIN_AFTER = 0.01
MARGIN_BEFORE = 0.02


def judge(spark, lake: Lake, home: Path, run_rows: list[dict], change_day: str | None) -> dict:
    """The served quality of the loop and of the first champion, never replaced, on the live
    days whose labels matured by the last run, and their means before and after the change.

    The loop's figures are those of the scores that stand (spark_jobs.served, as the score step
    measures them; the lake's served-quality file, which the score steps wrote, is checked to
    agree). The never-replaced model scores the same days with the score step's own code into
    a separate folder, once, after the timeline: each day from the marts the loop's standing
    scores read (a restated day's rebuilt marts), which is what a shadow scoring the same days
    as they arrived, and restated with them, would hold at the end.
    """
    from fraudops.core import scored
    from fraudops.model import loading, served
    from fraudops.model.profile import PRODUCTION
    from spark_jobs import score
    from spark_jobs import served as quality

    k = PRODUCTION.top_k
    first = next(r for r in run_rows if r.get("decision") == "first_champion")
    version = str(first["champion"])
    ledger = scored.ledger(lake)
    last = served.matured_until(run_rows[-1]["day"])
    days = sorted(d for d, e in ledger.items()
                  if first["day"] < d <= last and e.get("rows") and not e.get("withdrawn"))
    shadow = Lake(str(home / "never-replaced"))
    if days:
        score.score_days(spark, lake, loading.load_version(version), version, days, STATIC_RUN,
                         k, {d: ledger[d]["features_run"] for d in days}, out=shadow)
    loop = quality.measure(spark, lake, days, k)
    static = quality.measure(spark, lake, days, k, shadow.scores, shadow.alerts)
    stored = served.measurements(lake)
    cp = served.card_precision(k)
    agrees = all(stored[d]["served"] == served.served_key(ledger[d])
                 and all(_close(stored[d][m], loop[d][m]) for m in (served.AP, cp))
                 for d in days if d in stored)
    per_day = {d: {"loop_model_version": loop[d]["model_version"],
                   "loop_ap": loop[d][served.AP], "static_ap": static[d][served.AP],
                   f"loop_cp{k}": loop[d][cp], f"static_cp{k}": static[d][cp]} for d in days}
    means = {}
    for side, values in (("loop", loop), ("static", static)):
        for period, start, end in (("before_change", None, _before(change_day)),
                                   ("after_change", change_day, None)):
            if change_day is None and period == "after_change":
                continue
            got = served.means(values, (served.AP, cp), start, end)
            means[f"{side}_ap_{period}"] = got[served.AP]
            means[f"{side}_cp{k}_{period}"] = got[cp]
    return {"per_day": per_day, "means": means, "bars": bars(means, k),
            "days": {"from": days[0] if days else None, "to": days[-1] if days else None,
                     "count": len(days), "measured_by_score_steps": sum(d in stored for d in days)},
            "static_version": version, "state_agrees": agrees, "k": k}


def _before(day: str | None) -> str | None:
    return None if day is None else shift(day, -1)


def _close(a: float | None, b: float | None) -> bool:
    """Equal but for the order Spark summed in."""
    return (a is None) == (b is None) and (a is None or abs(a - b) <= 1e-9)


def bars(means: dict, k: int) -> dict:
    """issue 44's bars on the means, each met or not (None where a mean is missing)."""

    def check(test, *keys):
        values = [means.get(key) for key in keys]
        return None if any(v is None for v in values) else bool(test(*values))

    cp = f"cp{k}"
    return {
        "after_ap_gain": check(lambda loop, static: loop >= (1 + AP_GAIN_AFTER) * static,
                               "loop_ap_after_change", "static_ap_after_change"),
        f"after_{cp}_not_lower": check(lambda loop, static: loop >= static - CP_MARGIN_AFTER,
                                       f"loop_{cp}_after_change", f"static_{cp}_after_change"),
        "before_ap_not_lower": check(lambda loop, static: loop >= static - MARGIN_BEFORE,
                                     "loop_ap_before_change", "static_ap_before_change"),
        f"before_{cp}_not_lower": check(lambda loop, static: loop >= static - MARGIN_BEFORE,
                                        f"loop_{cp}_before_change", f"static_{cp}_before_change"),
    }


# --- the figures -------------------------------------------------------------------------------

def day_rows(deliveries: list[Delivery], runs: list[Run], run_rows: list[dict],
             ledger: dict[str, dict], first_scored: str, change: str | None) -> list[dict]:
    """One row per day of the lake from the first scored one: its deliveries, the run planned
    to pick it up and the run that cleaned it, and its ledger entry (who scored it, with which
    model version, its restatements): what issue 44 adds the served model's quality to."""
    planned = {id(d): r.day for r in runs for d in r.picks_up}
    cleaned_by: dict[str, list[str]] = {}
    for row in run_rows:
        for day in row.get("cleaned_days", []):
            cleaned_by.setdefault(day, []).append(row["day"])
    rows = []
    for day in sorted({d.day for d in deliveries if d.day >= first_scored}):
        mine = [d for d in deliveries if d.day == day]
        first = mine[0]
        entry = ledger.get(day, {})
        restatements = entry.get("restatements", [])
        end = timing.day_end(day)
        rows.append({
            "day": day,
            "world": None if change is None else ("after_change" if day >= change
                                                  else "before_change"),
            "delivery": first.kind,
            "delivered_at": first.at.isoformat(),
            "arrived_on": first.at.date().isoformat(),
            "hours_after_day_end": round((first.at - end).total_seconds() / 3600, 2),
            "redelivered": [{"kind": d.kind, "at": d.at.isoformat()} for d in mine[1:]],
            "picked_up_by_run": [planned.get(id(d)) for d in mine],
            "cleaned_by_run": cleaned_by.get(day, []),
            "scored_by_run": entry.get("first_as_of"),
            "last_scored_by_run": entry.get("as_of"),
            # As scored.status counts them: first scored by a run for a later day, the first
            # run's backlog aside.
            "late": bool(entry) and entry["first_as_of"] > max(day, runs[0].day),
            "model_version": entry.get("model_version"),  # whose scores stand now
            "first_model_version": (restatements[0]["previous_model_version"] if restatements
                                    else entry.get("model_version")),  # what served first
            "rows": entry.get("rows"),
            "restated": bool(restatements),
            "restatements": [{"run": r["as_of"], "reason": r["reason"],
                              "previous_model_version": r["previous_model_version"]}
                             for r in restatements],
        })
    return rows


def plot(days: list[dict], run_rows: list[dict], change: str | None, deadline_hours: float,
         path: Path, k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    def when(day: str) -> dt.datetime:
        return dt.datetime.fromisoformat(day)

    first_run = run_rows[0]["day"]
    days = [d for d in days if d["day"] >= first_run]  # the backlog before it: in the JSON
    fig, (ax1, ax2, ax3, ax4, ax5) = plt.subplots(
        5, 1, figsize=(13, 14), sharex=True, gridspec_kw={"height_ratios": [2, 1.3, 1.5, 1.5, 1.5]})
    kinds = {HISTORY: ("tab:gray", "o"), ON_TIME: ("tab:green", "o"), LATE: ("tab:red", "v"),
             TOGETHER: ("tab:orange", "s")}
    for kind, (colour, marker) in kinds.items():
        mine = [d for d in days if d["delivery"] == kind]
        if mine:
            ax1.scatter([when(d["day"]) for d in mine],
                        [d["hours_after_day_end"] for d in mine],
                        c=colour, marker=marker, s=22, label=f"file {kind.replace('_', ' ')}")
    extra = [(d["day"], r) for d in days for r in d["redelivered"]]
    for day, again in extra:
        hours = (dt.datetime.fromisoformat(again["at"]) - timing.day_end(day)).total_seconds()
        ax1.scatter([when(day)], [hours / 3600], marker="*", s=120, c="tab:purple",
                    label=f"sent again ({again['kind']})")
    ax1.axhline(deadline_hours, color="k", lw=0.8, ls="--", label="arrival deadline")
    ax1.set_ylabel("arrival, hours after\nthe day ended")
    ax1.set_ylim(bottom=0)
    ax1.legend(loc="upper left", fontsize=7, ncol=3)
    ax1.set_title("make backtest: the loop on the world's clock")

    scored = [d for d in days if d["scored_by_run"]]
    versions = [int(d["first_model_version"]) for d in scored]
    ax2.step([when(d["day"]) for d in scored], versions, where="post", color="tab:blue",
             lw=0.8, label="model version that first scored the day")
    for late, colour, label in ((False, "tab:blue", "scored by its own run"),
                                (True, "tab:orange", "scored late, by a later run")):
        mine = [d for d in scored if d["late"] == late]
        ax2.scatter([when(d["day"]) for d in mine], [int(d["first_model_version"]) for d in mine],
                    s=14, c=colour, label=label, zorder=3)
    restated = [d for d in scored if d["restated"]]
    ax2.scatter([when(d["day"]) for d in restated], [int(d["model_version"]) for d in restated],
                marker="x", c="tab:red", label="restated: version whose scores stand")
    promoted = [r for r in run_rows if r.get("decision") in ("promoted", "first_champion")]
    for r in promoted:
        ax2.axvline(when(r["day"]), color="tab:green", lw=0.6, alpha=0.6)
    ax2.set_ylabel("model version")
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.legend(loc="upper left", fontsize=7, ncol=2)

    colours = {"trained": "tab:blue", "no_new_data": "tab:gray", "no_new_rows": "tab:olive"}
    for r in run_rows:
        base = r["path"].split(",")[0]
        tuned = r.get("train_path") == "tune"
        ax3.bar(when(r["day"]), r["total_s"] or 1, width=0.8, color=colours[base],
                hatch="//" if tuned else None, edgecolor="k" if tuned else None, lw=0.3)
        if "day_missing" in r["path"]:
            ax3.scatter([when(r["day"])], [0], marker="^", c="tab:red", s=30, zorder=3)
    from matplotlib.patches import Patch

    ax3.legend(handles=[Patch(color=c, label=k) for k, c in colours.items()]
               + [Patch(facecolor="white", hatch="//", edgecolor="k", label="tuning"),
                  plt.Line2D([], [], marker="^", color="tab:red", ls="", label="day missing")],
               loc="upper left", fontsize=7, ncol=5)
    ax3.set_ylabel("run seconds\n(by logical day)")
    judged = [d for d in days if "loop_ap" in d]
    for ax, metric, label in ((ax4, "ap", "served AP"), (ax5, f"cp{k}", f"served CP@{k}")):
        for side, colour, name in (("loop", "tab:blue", "the loop (the champion of the day)"),
                                   ("static", "tab:gray", "the first champion, never replaced")):
            mine = [d for d in judged if d[f"{side}_{metric}"] is not None]
            ax.plot([when(d["day"]) for d in mine], [d[f"{side}_{metric}"] for d in mine],
                    "o-", ms=3, lw=0.8, color=colour, label=name)
        ax.set_ylabel(f"{label}\n(matured labels)")
        ax.grid(alpha=0.3)
    ax4.legend(loc="lower left", fontsize=7, ncol=2)
    for ax in (ax1, ax2, ax3, ax4, ax5):
        if change:
            ax.axvline(when(change), color="tab:purple", lw=1.2, ls=":")
    if change:
        ax1.annotate("the world changes", (when(change), ax1.get_ylim()[1]), fontsize=8,
                     color="tab:purple", va="top")
    ax5.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main --------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Economies" + __doc__.split("Economies")[1].split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path(".bench/backtest"),
                   help="producer lake, lake, MLflow store, report (emptied first)")
    p.add_argument("--output", type=Path, default=Path(".bench/backtest.json"))
    p.add_argument("--plot", type=Path, default=Path(".bench/backtest.png"))
    p.add_argument("--first-run-day", type=int, default=71,
                   help="day index of the first run (it cleans the history and makes the first "
                   "champion; its training window must lie after the 37-day warm-up)")
    p.add_argument("--live-days", type=int, default=65,
                   help="runs after the first, one per day")
    p.add_argument("--change-day", type=int, default=95,
                   help="day index from which the world changes (negative: never)")
    p.add_argument("--customers", type=int, default=500)
    p.add_argument("--terminals", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--defect-rate", type=float, default=0.002)
    p.add_argument("--grid", choices=["default", "small"], default="small",
                   help="the tuning grid (train --grid)")
    p.add_argument("--events", default="5,12,20,26,4", metavar="L,LL,T,C,A",
                   help="live-day offsets of the file late by hours, the file two days late, "
                   "the pair that lands together, the corrected day, and the days after which "
                   "the correction lands")
    p.add_argument("--shuffle-partitions", type=int, default=2,
                   help="FRAUDOPS_SHUFFLE_PARTITIONS, unless set in the environment")
    p.add_argument("--redraw", action="store_true",
                   help="run nothing: the figures again from --workdir and --output of a "
                   "finished run with the same options")
    p.add_argument("--fires", choices=["deployed", "rule"], default="deployed",
                   help="deployed: ask the DAG's timetable (imports Airflow in a child "
                   "process); rule: the end of each day, as timing documents it")
    return p.parse_args(argv)


def events_of(value: str) -> Events:
    return Events(*[int(v) for v in value.split(",")])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.redraw:
        return redraw(args)
    started = time.perf_counter()
    from fraudops.orchestration.settings import load_settings

    settings = load_settings()
    deadline = settings.arrival_deadline
    home = args.workdir.resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ[config.HOME_ENV] = str(home)
    os.environ[config.TRACKING_URI_ENV] = f"sqlite:///{home / 'mlflow.db'}"
    producer, lake = Lake(str(home / "producer")), Lake(config.lake_root_in(home))

    events = events_of(args.events)
    days_total = args.first_run_day + 1 + args.live_days
    run_days = [day_of(i) for i in range(args.first_run_day, days_total)]
    deliveries = plan_deliveries(args.first_run_day, args.live_days, deadline, events, args.seed)
    fires = (deployed_fires(run_days[0], run_days[-1], home) if args.fires == "deployed"
             else rule_fires(run_days))
    runs = plan_runs(run_days, fires, deliveries, deadline)

    from fraudops.simulator.generate import generate_lake
    from fraudops.simulator.handbook import WorldChange

    change = WorldChange(args.change_day) if 0 <= args.change_day < days_total else None
    generated = generate_lake(producer, START, days_total, args.customers, args.terminals,
                              seed=args.seed, defect_rate=args.defect_rate, change=change)
    corrected = {d.day: corrected_file(Path(producer.raw_file(d.day)).read_bytes())
                 for d in deliveries if d.kind == CORRECTION}
    setup_s = time.perf_counter() - started

    from fraudops.model import families
    from spark_jobs.session import get_spark

    # A day of a small lake is a few hundred KB: 2 shuffle partitions, one per core (the steps'
    # default of 8 is for the demo's and the cluster's sizes; the tests use 2 as well).
    os.environ.setdefault("FRAUDOPS_SHUFFLE_PARTITIONS", str(args.shuffle_partitions))
    get_spark("backtest", preload=families.PRODUCTION_LIBRARIES)
    loop = Loop(lake, {"train": ("--grid", args.grid)})
    pending = list(deliveries)
    run_rows = []
    for run in runs:
        while pending and pending[0].at <= run.went:
            deliver(producer, lake, pending.pop(0), corrected)
        log.info("run for %s: fired %s, went %s (own file %s)", run.day, run.fired, run.went,
                 run.own_file)
        row = loop.run(run)
        log.info("run for %s: %s in %.0f s", run.day, row["path"], row["total_s"])
        run_rows.append(row)
        # Progress a person can read while the timeline runs; finish() replaces it.
        storage.write_json(str(args.output), {"partial": True, "run_rows": run_rows})
    loop_s = time.perf_counter() - started - setup_s

    judge_s = time.perf_counter()
    change_day = generated["change"]["day"] if change else None
    judged = judge(get_spark("backtest"), lake, home, run_rows, change_day)
    judge_s = time.perf_counter() - judge_s

    from spark_jobs import report

    report_s = time.perf_counter()
    report.run(lake, "backtest-report", home / "report")
    report_s = time.perf_counter() - report_s
    measured = {"generate": round(setup_s, 1), "runs": round(loop_s, 1),
                "judge": round(judge_s, 1), "report": round(report_s, 1),
                "total": round(time.perf_counter() - started, 1)}
    return finish(args, settings.schedule, deadline, deliveries, runs, run_rows, measured,
                  {"transactions": generated["transactions"], "change_day": change_day}, judged)


def finish(args: argparse.Namespace, schedule: str | None, deadline: dt.timedelta,
           deliveries: list[Delivery], runs: list[Run], run_rows: list[dict],
           measured: dict, lake_facts: dict, judged: dict) -> dict:
    """The figures of a timeline that ran: the ledger's counts, day and run rows, JSON, plot."""
    from fraudops.core import scored
    from fraudops.model.splits import first_full_day
    from spark_jobs.datasets import clean_days
    from spark_jobs.marts import LOOKBACK_DAYS

    lake = Lake(config.lake_root_in(args.workdir.resolve()))
    last = runs[-1].day
    clean = clean_days(lake)
    first_scored = first_full_day(clean[0], LOOKBACK_DAYS)
    status = scored.status(lake, clean, last)
    change_day = lake_facts["change_day"]
    days = day_rows(deliveries, runs, run_rows, scored.ledger(lake), first_scored, change_day)
    for row in days:
        row.update(judged["per_day"].get(row["day"], {}))
    arrived = {d.day for d in deliveries if first_scored <= d.day <= last and d.at <= runs[-1].went}
    # Which files each run found new (the DAG's detect_new_files), against the plan.
    as_planned = all(
        sorted(name.removesuffix(".txt") for name in row["new_files"])
        == sorted({d.day for d in run.picks_up}) for run, row in zip(runs, run_rows))
    per_step: dict[str, float] = {}
    for row in run_rows:
        for name, seconds in row["seconds"].items():
            per_step[name] = round(per_step.get(name, 0) + seconds, 1)
    results = {
        "days_arrived": len(arrived),
        "days_scored": status["days_scored"],
        "days_restated": status["days_restated"],
        "restatements": status["restatements"],
        "stale_scores": status["stale_scores"],
        "stale_days": status["stale_days"],
        "late_days": status["late_days"],
        "scored_equals_arrived": status["days_scored"] == len(arrived),
        **judged["means"],
        "served_bars": judged["bars"],
        "served_judged_days": judged["days"],
        "static_model_version": judged["static_version"],
        "served_k": judged["k"],
        "served_state_agrees": judged["state_agrees"],
        "pickups_as_planned": as_planned,
        "first_scored_day": first_scored,
        "first_run": runs[0].day,
        "last_run": last,
        "live_days": len(runs) - 1,
        "change_day": change_day,
        "runs": len(run_rows),
        "runs_by_path": _count(r["path"] for r in run_rows),
        "trainings_by_path": _count(r["train_path"] for r in run_rows if "train_path" in r),
        "decisions": _count(r["decision"] for r in run_rows if "decision" in r),
        "champion_at_end": next((r["champion"] for r in reversed(run_rows)
                                 if r.get("champion")), None),
        "arrival_deadline_hours": deadline.total_seconds() / 3600,
        "schedule": schedule,
        "fires": args.fires,
        "transactions": lake_facts["transactions"],
        "customers": args.customers,
        "terminals": args.terminals,
        "grid": args.grid,
        "seconds": {**measured, **per_step},
        "bar_s": BAR_SECONDS,
        "within_bar": measured["total"] <= BAR_SECONDS,
        "cpus": os.cpu_count(),
        "day_rows": days,
        "run_rows": run_rows,
    }
    storage.write_json(str(args.output), results)
    plot(days, run_rows, change_day, deadline.total_seconds() / 3600, args.plot, judged["k"])
    print_summary(results, args)
    return results


def redraw(args: argparse.Namespace) -> dict:
    """The figures again from --workdir and --output of a finished run (same options)."""
    from fraudops.orchestration.settings import load_settings

    settings = load_settings()
    before = json.loads(args.output.read_text())
    days = [r["day"] for r in before["run_rows"]]
    deliveries = plan_deliveries(args.first_run_day, args.live_days, settings.arrival_deadline,
                                 events_of(args.events), args.seed)
    fires = {r["day"]: dt.datetime.fromisoformat(r["fired"]) for r in before["run_rows"]}
    runs = plan_runs(days, fires, deliveries, settings.arrival_deadline)
    measured = {k: before["seconds"][k] for k in ("generate", "runs", "report", "total")}
    judged = {"per_day": {r["day"]: {k: r[k] for k in r if k.startswith(("loop_", "static_"))}
                          for r in before["day_rows"]},
              "means": {k: before[k] for k in before if k.startswith(("loop_", "static_"))
                        and k.endswith("_change")},
              "bars": before["served_bars"], "days": before["served_judged_days"],
              "static_version": before["static_model_version"],
              "state_agrees": before["served_state_agrees"], "k": before["served_k"]}
    return finish(args, settings.schedule, settings.arrival_deadline, deliveries, runs,
                  before["run_rows"], measured,
                  {"transactions": before["transactions"], "change_day": before["change_day"]},
                  judged)


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items()))


def print_summary(results: dict, args: argparse.Namespace) -> None:
    print("\nrun for     went              path                        train  decision         "
          "champion  scored  restated  s")
    for r in results["run_rows"]:
        print(f"{r['day']}  {r['went'][5:16]:16}  {r['path']:26}  {r.get('train_path', '-'):5}  "
              f"{r.get('decision', '-'):15}  {str(r.get('champion', '-')):8}  "
              f"{len(r.get('scored_days', [])):6}  {len(r.get('restated', [])):8}  "
              f"{r['total_s']:.0f}")
    print()
    for key, value in results.items():
        if key not in ("day_rows", "run_rows"):
            print(f"{key:24} {json.dumps(value)}")
    print(f"\nwritten to {args.output} and {args.plot}")


if __name__ == "__main__":
    main()
