"""`make demo`: the daily retraining loop end to end on this machine, through the real DAG.

    python -m fraudops.orchestration.demo --home .demo

Generates a lake of several weeks, withholds one day's file (a day when nothing arrives), then
runs the Airflow DAG with `airflow dags test` for consecutive logical dates: the first run
backfills everything that has arrived, each later run adds one day, the day without a file takes
the skip path. Spark runs on local[*], MLflow is a local SQLite store. Ends with a table of the
runs and the report's path.
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
from fraudops.core.steps import safe_id
from fraudops.orchestration.local_airflow import LocalAirflow
from fraudops.orchestration.settings import step_args_env
from fraudops.simulator.generate import generate_lake
from fraudops.simulator.handbook import SimulationParams

START = SimulationParams.start_date  # the generator's first day, as the DAG's default start
# Options the demo gives the steps through the DAG's environment (FRAUDOPS_<STEP>_ARGS).
# `--policy better`: on a demo lake of a few thousand transactions a day, the 95% interval of
# the AP difference over a 7-day window is wide, so the production policy (`ci`) rejects nearly
# every challenger; the plain comparison lets the demo show promotions as well as rejections.
DEMO_STEP_ARGS = {"train": "", "promote": "--policy better"}
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\w+)")
# A job's own log line (logger spark_jobs.<step> or fraudops.<package>.<module>), its message kept.
_JOB_LOG = re.compile(r"INFO (?:spark_jobs|fraudops\.\w+)\.(\w+: .*?)\s*\[airflow\.task")


def say(message: str) -> None:
    print(f">>> {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--home", type=Path, default=Path(".demo"),
                   help="working folder: lake, MLflow store, Airflow home, reports, logs")
    p.add_argument("--customers", type=int, default=1500)
    p.add_argument("--terminals", type=int, default=3000)
    p.add_argument("--first-day", type=int, default=37,
                   help="index of the first logical date (days of history it backfills)")
    p.add_argument("--runs", type=int, default=5, help="consecutive logical dates to run")
    p.add_argument("--missing", type=int, default=2,
                   help="which run (0-based) finds no new file")
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
        print(f"    - {match.group(1)}", flush=True)
    elif match := _JOB_LOG.search(line):
        print(f"      {match.group(1)[:160]}", flush=True)
    elif "new_state=failed" in line or "new_state=up_for_retry" in line:
        print(f"      !! {line[:300]}", flush=True)


def run_path(states: dict[str, str | None]) -> str:
    if states.get("no_new_data") == "success":
        return "skipped: no new file"
    if states.get("no_new_rows") == "success":
        return "skipped: no new rows"
    return "trained" if states.get("train") == "success" else "incomplete"


def summary_row(lake: Lake, airflow: LocalAirflow, day: str) -> dict:
    run = airflow.dag_run(day)
    run_id = safe_id(run.run_id)
    cleaned = storage.read_json(lake.run_summary("clean", run_id)) or {}
    promoted = storage.read_json(lake.run_summary("promote", run_id)) or {}
    scored = storage.read_json(lake.run_summary("score", run_id)) or {}
    challenger = (promoted.get("metrics") or {}).get("challenger") or {}
    return {
        "date": day,
        "dag_run": run.state,
        "new_rows": cleaned.get("rows_clean", 0),
        "quarantined": cleaned.get("rows_quarantined", 0),
        "path": run_path(airflow.task_states(day)),
        "decision": promoted.get("decision", "-"),
        "challenger": promoted.get("challenger_version", "-"),
        "champion": promoted.get("champion_version", "-"),
        "scored_with": str(scored.get("model_version", "-")),
        "AP": challenger.get("average_precision"),
        "AUC": challenger.get("roc_auc"),
        "CP@100": challenger.get("card_precision_at_100"),
    }


def format_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    cells = [[("-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
              for v in row.values()] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    header = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join([header, "-" * len(header), *body])


def run_demo(args: argparse.Namespace) -> list[dict]:
    """Generate the lake, run the DAG for each date, return one summary row per run."""
    home = args.home.resolve()
    lake = Lake(config.lake_root_in(home))
    dates = [(START + dt.timedelta(days=args.first_day + i)).isoformat() for i in range(args.runs)]

    say(f"generating {args.first_day + args.runs} days of transactions into {lake.raw}")
    generated = generate_lake(lake, START, args.first_day + args.runs, args.customers,
                              args.terminals, seed=args.seed, defect_rate=args.defect_rate)
    say(f"{generated['transactions']:,} transactions, {generated['fraud_rate']:.2%} fraud, "
        f"defects injected: {sum(generated['defects'].values())}")
    missing = dates[args.missing] if 0 <= args.missing < len(dates) else None
    if missing:
        os.remove(lake.raw_file(missing))
        say(f"withholding {missing}: that run finds no new file")

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
        row = summary_row(lake, airflow, day)
        rows.append(row)
        say(f"{day}: {row['dag_run']}, {row['path']}, decision {row['decision']}, "
            f"{time.perf_counter() - started:.0f} s")
        if result.returncode != 0 or row["dag_run"] != "success":
            raise SystemExit(f"the DAG run for {day} failed; full log in {log_path}")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    started = time.perf_counter()
    rows = run_demo(args)
    home = args.home.resolve()
    table = format_table(rows)
    print("\n" + table + "\n", flush=True)
    (home / "demo_summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    (home / "demo_summary.txt").write_text(table + "\n")
    say(f"report: {home / 'reports' / 'index.html'}")
    say(f"MLflow store: {home / '.mlflow'}; lake: {config.lake_root_in(home)}; to browse both: "
        f"make ui UI_HOME={args.home}")
    say(f"{time.perf_counter() - started:.0f} s in all")
    return rows


if __name__ == "__main__":
    main()
