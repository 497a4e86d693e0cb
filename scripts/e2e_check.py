"""The Python half of `make e2e` (scripts/e2e.sh): facts the script needs and the final asserts.

    python scripts/e2e_check.py lake-root          the lake root the DAG uses on Kubernetes
    python scripts/e2e_check.py last-day --days N  the last day of an N-day generated lake
    python scripts/e2e_check.py run-state --run-id ID < list-runs.json
                                                   the state of one DAG run (airflow dags list-runs -o json)
    python scripts/e2e_check.py assert --tracking-uri URI --lake-root ROOT --date DAY
                                                   a @champion version exists and DAY has scored rows
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import sys

from fraudops.core import storage
from fraudops.core.lake import Lake, shift
from fraudops.core.platform import platform
from fraudops.simulator.handbook import SimulationParams

CHAMPION = "champion"  # fraudops.model.registry.CHAMPION, without importing the model library


def lake_root() -> str:
    from fraudops.orchestration.settings import kubernetes_lake_root

    return kubernetes_lake_root()


def last_day(days: int) -> str:
    return shift(SimulationParams.start_date.isoformat(), days - 1)


def run_state(runs: list[dict], run_id: str) -> str:
    """'success', 'failed', 'running', 'queued', or 'missing' when the run is not listed yet."""
    states = [r.get("state") for r in runs if r.get("run_id") == run_id]
    return states[0] if states else "missing"


def dag_state(details: str) -> str:
    """What `airflow dags details <dag> -o json` says of a DAG: "unparsed" (not in the database
    yet: the command fails, and `dags unpause` would print "No paused DAGs were found" and exit
    0), "scheduled <summary>" (unpausing would start scheduled runs), "paused" or "unpaused"."""
    start = details.find("[")  # after any log line the CLI printed first
    try:
        (dag,) = json.loads(details[start:]) if start >= 0 else []
    except ValueError:
        return "unparsed"
    summary = dag.get("timetable_summary")
    if summary not in (None, "None"):
        return f"scheduled {summary}"
    return "paused" if dag["is_paused"] else "unpaused"


def scored_rows(root: str, day: str) -> int:
    import pyarrow.parquet as pq

    lake = Lake(root)
    files = storage.list_files(lake.partition(lake.scores, day), ".parquet")
    return sum(pq.read_metadata(io.BytesIO(storage.read_bytes(f.path))).num_rows for f in files)


def check(tracking_uri: str, root: str, day: str, model_name: str) -> list[str]:
    """What is wrong with the platform's end state, or nothing."""
    import mlflow
    from mlflow.exceptions import MlflowException

    problems = []
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
        print(f"@{CHAMPION} of {model_name}: version {version.version}")
    except MlflowException as exc:
        problems.append(f"no @{CHAMPION} for {model_name} at {tracking_uri}: {exc}")
    rows = scored_rows(root, day)
    print(f"scored rows of {day} under {root}: {rows}")
    if rows == 0:
        lake = Lake(root)
        problems.append(f"no scored rows for {day} under {lake.partition(lake.scores, day)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("lake-root", help="the lake root of the DAG on Kubernetes")
    last = sub.add_parser("last-day", help="the last day of a generated lake")
    last.add_argument("--days", type=int, required=True)
    state = sub.add_parser("run-state", help="a DAG run's state from list-runs JSON on stdin")
    state.add_argument("--run-id", required=True)
    sub.add_parser("dag-state", help="a DAG's state from `airflow dags details -o json` on stdin")
    final = sub.add_parser("assert", help="a champion exists and the day was scored")
    final.add_argument("--tracking-uri", required=True)
    final.add_argument("--lake-root", required=True)
    final.add_argument("--date", required=True, type=dt.date.fromisoformat)
    final.add_argument("--model-name", default=platform()["mlflow"]["model_name"])
    args = p.parse_args(argv)
    if args.command == "lake-root":
        print(lake_root())
    elif args.command == "last-day":
        print(last_day(args.days))
    elif args.command == "dag-state":
        print(dag_state(sys.stdin.read()))
    elif args.command == "run-state":
        print(run_state(json.loads(sys.stdin.read() or "[]"), args.run_id))
    else:
        problems = check(args.tracking_uri, args.lake_root, args.date.isoformat(), args.model_name)
        for problem in problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        if problems:
            return 1
        print("e2e: the platform trained, promoted and scored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
