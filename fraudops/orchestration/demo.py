"""`make demo`: the daily retraining loop end to end on this machine, through the real DAG.

    python -m fraudops.orchestration.demo --home .demo

Generates a lake of a few months in which the world changes on one day (--change-day: customers
shop more often and compromised cards start card testing, fraudops.simulator.handbook.WorldChange),
withholds one day's file (a day when nothing arrives), then runs the Airflow DAG with
`airflow dags test` for the logical dates of --run-days: the first run backfills everything that
has arrived, tunes and makes the first champion; the day without a file takes the missing path
(day_missing; its arrival deadline passed long ago, so the run does not wait) and, with nothing
else new, skips the model steps; a run the day after the change finds the drift report
alerting, while its test window, whose labels are known already, lies before the change, and its
challenger (a refit three days fresher than the champion) is not better: rejected; the alert
schedules a tuning for the day its folds lie after it, and that run tunes (the drift alert) and
its challenger is promoted under the production policy (`ci`). Days between runs arrive together, as after a pause. Spark runs on
local[*], MLflow is a local SQLite store.
Ends with a table of the runs, where the time went per step, and the report's path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import time
from pathlib import Path

from fraudops.core import config, storage
from fraudops.core.lake import Lake
from fraudops.core.steps import unique_id
from fraudops.model.profile import PRODUCTION
from fraudops.orchestration.local_airflow import LocalAirflow
from fraudops.orchestration.settings import step_args_env
from fraudops.simulator.generate import generate_lake
from fraudops.simulator.handbook import SimulationParams, WorldChange

START = SimulationParams.start_date  # the generator's first day, as the DAG's default start
# Options the demo gives the steps through the DAG's environment (FRAUDOPS_<STEP>_ARGS): none,
# the steps run with the production profile and the production promotion policy (`ci`).
DEMO_STEP_ARGS = {"train": "", "promote": ""}
# A run as of day D reads labels through D - 7 (the label delay): its evaluation model learns 21
# days ending on D - 21 and its folds use the days up to D - 14, which must hold two folds of
# 17 days after the warm-up (37 days: fraudops.model.splits), hence a first run on day 71. The
# change on day 73 makes the drift report of day 74 alert while the test window of day 74 (days
# 61 to 67) lies before it; the alert's tuning falls due 30 days later (fraudops.model.tuning.
# drift_wait_days), on day 104, whose folds hold only days after the alert and whose test window
# (91 to 97) is after the change. Each run costs a few Spark and MLflow start-ups per step; four
# runs show every path (add 105 for a refit of the new champion's configuration).
RUN_DAYS = "71,72,74,104"
STEP_ORDER = ("clean", "features", "train", "promote", "score", "report")
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\w+)")
# A job's own log line (logger spark_jobs.<step> or fraudops.<package>.<module>), its message kept.
# A job run as a module logs as __main__: its task's name stands in for the logger's.
_JOB_LOG = re.compile(
    r"INFO (?:spark_jobs\.(\w+)|fraudops\.(?!core\.laps)\w+\.(\w+)|(__main__)): (.*?)\s*\[airflow\.task")
_current_task: list[str] = ["?"]


def _day_list(value: str) -> list[int]:
    days = [int(v) for v in value.split(",") if v.strip()]
    if not days or days != sorted(set(days)) or days[0] < 0:
        raise argparse.ArgumentTypeError(f"increasing day indices expected, got {value!r}")
    return days


def say(message: str) -> None:
    print(f">>> {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--home", type=Path, default=Path(".demo"),
                   help="working folder: lake, MLflow store, Airflow home, reports, logs")
    p.add_argument("--customers", type=int, default=1500)
    p.add_argument("--terminals", type=int, default=3000)
    p.add_argument("--run-days", type=_day_list, default=_day_list(RUN_DAYS),
                   help="the logical dates to run, as day indices from the lake's first day "
                   "(the first one backfills that many days of history)")
    p.add_argument("--missing", type=int, default=1,
                   help="which run (0-based) finds no file for its day (and no other new one)")
    p.add_argument("--change-day", type=int, default=73,
                   help="day index from which the world changes (negative: never)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--defect-rate", type=float, default=0.002,
                   help="share of raw rows given a defect (quarantined by clean)")
    for step, default in DEMO_STEP_ARGS.items():
        p.add_argument(f"--{step}-args", default=default, metavar="OPTIONS",
                       help=f"extra options of the {step} step (FRAUDOPS_{step.upper()}_ARGS)")
    return p.parse_args(argv)


def task_progress(line: str) -> None:
    """Echo the lines of a DAG run that show where it is: task starts, job summaries, failures."""
    if match := _TASK_START.search(line):
        _current_task[0] = match.group(1)
        print(f"    - {match.group(1)}", flush=True)
    elif match := _JOB_LOG.search(line):
        name = match.group(1) or match.group(2) or _current_task[0]
        print(f"      {name}: {match.group(4)}"[:166], flush=True)
    elif "new_state=failed" in line or "new_state=up_for_retry" in line:
        print(f"      !! {line[:300]}", flush=True)


def run_path(states: dict[str, str | None]) -> str:
    """The path a run took, from its task states; "day missing, ..." when the day's own file
    did not arrive by its deadline (the run still cleans the other new files)."""
    if states.get("no_new_data") == "success":
        path = "skipped: no new file"
    elif states.get("no_new_rows") == "success":
        path = "skipped: no new rows"
    else:
        path = "trained" if states.get("train") == "success" else "incomplete"
    return f"day missing, {path}" if states.get("day_missing") == "success" else path


def summary_row(lake: Lake, airflow: LocalAirflow, day: str) -> dict:
    run = airflow.dag_run(day)
    run_id = unique_id(run.run_id)
    cleaned = storage.read_json(lake.run_summary("clean", run_id)) or {}
    trained = storage.read_json(lake.run_summary("train", run_id)) or {}
    promoted = storage.read_json(lake.run_summary("promote", run_id)) or {}
    scored = storage.read_json(lake.run_summary("score", run_id)) or {}
    measured = promoted.get("metrics") or {}
    challenger = measured.get("challenger") or {}
    # The champion that served until this run, on the same test window; the first champion
    # is the challenger itself.
    champion = measured.get("champion") or (challenger if promoted.get("promoted") else {})
    psi = scored.get("psi") or {}
    return {
        "date": day,
        "dag_run": run.state,
        "new_rows": cleaned.get("rows_clean", 0),
        "quarantined": cleaned.get("rows_quarantined", 0),
        "path": run_path(airflow.task_states(day)),
        "train": trained.get("path", "-"),
        "champion_AP": champion.get("average_precision"),
        "challenger_AP": challenger.get("average_precision"),
        "AUC": challenger.get("roc_auc"),
        f"CP@{PRODUCTION.top_k}": challenger.get(PRODUCTION.card_precision),
        "decision": promoted.get("decision", "-"),
        "challenger": promoted.get("challenger_version", "-"),
        "champion": promoted.get("champion_version", "-"),
        "scored_with": str(scored.get("model_version", "-")),
        # Every arrived day the run scored (its own, late ones, the first run's history), and of
        # those the days scored before whose marts changed since (fraudops.core.scored).
        "days_scored": len(scored.get("days", [])),
        "restated": len(scored.get("restated", {})),
        "psi_max": max(psi.values()) if psi else None,
        "drift": ",".join(short_feature(f) for f in scored.get("drift_alerts", [])) or "-",
    }


def short_feature(name: str) -> str:
    """customer_id_nb_tx_7day_window -> customer_nb_tx_7d: the drift column stays narrow."""
    return (name.replace("_id_", "_").replace("day_window", "d"))


def step_times(airflow: LocalAirflow, day: str, wall: float) -> dict:
    """Seconds per Spark step of the day's run (Airflow's task durations), and the rest."""
    durations = airflow.task_durations(day)
    row = {"date": day, **{step: durations.get(step) for step in STEP_ORDER}}
    steps = sum(v for v in row.values() if isinstance(v, float))
    return {**row, "other": wall - steps, "total": wall}


def format_table(rows: list[dict], digits: int = 3) -> str:
    columns = list(rows[0])
    cells = [[("-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v))
              for v in row.values()] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    header = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join([header, "-" * len(header), *body])


def run_demo(args: argparse.Namespace, times: list[dict] | None = None) -> list[dict]:
    """Generate the lake, run the DAG for each date, return one summary row per run (and add
    each run's seconds per step to ``times``)."""
    home = args.home.resolve()
    lake = Lake(config.lake_root_in(home))
    dates = [(START + dt.timedelta(days=i)).isoformat() for i in args.run_days]
    days = args.run_days[-1] + 1
    change = WorldChange(args.change_day) if 0 <= args.change_day < days else None

    say(f"generating {days} days of transactions into {lake.raw}")
    generated = generate_lake(lake, START, days, args.customers, args.terminals, seed=args.seed,
                              defect_rate=args.defect_rate, change=change)
    say(f"{generated['transactions']:,} transactions, {generated['fraud_rate']:.2%} fraud, "
        f"defects injected: {sum(generated['defects'].values())}")
    if change:
        say(f"the world changes on {generated['change']['day']}: customers shop "
            f"{change.pace_factor:g} times as often, compromised cards start card testing")
    missing = dates[args.missing] if 0 <= args.missing < len(dates) else None
    if missing:
        os.remove(lake.raw_file(missing))
        say(f"withholding {missing}: that run finds its day missing")

    step_args = {step_args_env(step): getattr(args, f"{step}_args")
                 for step in DEMO_STEP_ARGS if getattr(args, f"{step}_args")}
    airflow = LocalAirflow.create(home / ".airflow", home, lake.root, **step_args)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    rows = []
    for day in dates:
        log_path = home / "logs" / f"dag-{day}.log"
        say(f"airflow dags test {airflow.dag_id} {day}   (log: {log_path})")
        started = time.perf_counter()
        result = airflow.dags_test(day, log_path=log_path, echo=task_progress)
        wall = time.perf_counter() - started
        row = summary_row(lake, airflow, day)
        rows.append(row)
        if times is not None:
            times.append(step_times(airflow, day, wall))
        say(f"{day}: {row['dag_run']}, {row['path']}, decision {row['decision']}, {wall:.0f} s")
        if result.returncode != 0 or row["dag_run"] != "success":
            raise SystemExit(f"the DAG run for {day} failed; full log in {log_path}")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    started = time.perf_counter()
    times: list[dict] = []
    rows = run_demo(args, times)
    home = args.home.resolve()
    table = format_table(rows)
    print("\n" + table + "\n", flush=True)
    timing = format_table(times + [{"date": "all runs", **{
        key: sum(t[key] or 0.0 for t in times) for key in times[0] if key != "date"}}],
        digits=0)
    print("seconds per step (Airflow task durations; other: Airflow itself, the wait for the "
          "day's file, the branch tasks)")
    print(timing + "\n", flush=True)
    (home / "demo_summary.json").write_text(json.dumps({"runs": rows, "seconds": times},
                                                       indent=2) + "\n")
    (home / "demo_summary.txt").write_text(table + "\n\n" + timing + "\n")
    say(f"report: {home / 'reports' / 'index.html'}")
    say(f"MLflow store: {home / '.mlflow'}; lake: {config.lake_root_in(home)}; to browse both: "
        f"make ui UI_HOME={args.home}")
    say(f"{time.perf_counter() - started:.0f} s in all")
    return rows


if __name__ == "__main__":
    main()
