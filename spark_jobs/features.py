"""Feature job: the customer and terminal marts for the days that changed, and no others.

    python -m spark_jobs.features --lake-root data/lake --run-id <clean run>   # after clean
    python -m spark_jobs.features --dates 2018-05-01,2018-05-02                 # by hand

The marts and their windows are spark_jobs.windows' (what each mart sums, the event-time
windows); the daily step's running sums are spark_jobs.window_sums'.

A changed day moves the features of the 37 days after it, so those are recomputed too, from
the 37 days before the first recomputed day, never the whole history. The daily step (one new
day, the newest) reads its edge days and yesterday's stored sums only; both ways give the same
marts.

The marts of a run are written as a version of its own and published together by one fenced
commit of _state/marts.json (fraudops.core.publication): a run that dies before it leaves the
marts readers see as they were.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import SparkSession

from fraudops.core import cli, faults, lease, scored, storage
from fraudops.core import pending as pending_work
from fraudops.core.lake import PARTITION_COLUMN, Lake, shift, write_version
from fraudops.core.publication import collect
from spark_jobs.datasets import (
    clean_days,
    read_clean,
    stage_days,
)
from spark_jobs.marts import LOOKBACK_DAYS, days_to_recompute
from spark_jobs.window_sums import (
    can_step_daily,
    daily_mart,
    forget_changed_sums,
    full_day_sums,
    save_sums,
)
from spark_jobs.windows import MARTS, Mart, full_mart

log = logging.getLogger(__name__)


def each_mart(build: Callable[[Mart], None]) -> None:
    """Build both marts at once, each from its own driver thread.

    A mart's stages end with fewer running tasks than cores: the last task of a stage, or a
    stage that adaptive execution coalesced to fewer tasks than cores. Built one after the
    other on 2 cores, the marts left one core idle for a sixth of the job; built at once, Spark
    hands that core the other mart's tasks for the same task CPU time (docs/performance.md).
    The marts share nothing they write: each has its own folders and window sums.
    """
    with ThreadPoolExecutor(len(MARTS), thread_name_prefix="mart") as pool:
        for _ in pool.map(build, MARTS):  # re-raises a failure once both have ended
            pass


def run(spark: SparkSession, lake: Lake, changed: list[str], run_id: str | None = None) -> dict:
    """Rebuild the marts of ``changed`` and of every day clean left pending, holding the lake's
    lease; pending days are dropped only once their marts are written."""
    with lease.held(lake, "features", run_id or cli.run_id(None)) as held:
        owed = pending_work.features_days(lake)
        if set(owed) - set(changed):
            log.info("also rebuilding days an earlier run left pending: %s",
                     cli.span(sorted(set(owed) - set(changed))))
        todo = sorted(set(changed) | set(owed))
        summary = _run(spark, lake, todo, write_version(held.run_id, held.token))
        scored.owe(lake, scored.rebuild_reasons(todo, summary["days"], summary["deleted_days"]),
                   run_id or "(by hand)")
        faults.point("features.after_marts")
        held.check()
        pending_work.remove_features_days(lake, todo)
        return summary


def _run(spark: SparkSession, lake: Lake, changed: list[str], version: str) -> dict:
    """Write the marts of the days to recompute as ``version``, then publish them and drop the
    deleted days' in one commit of the marts' index."""
    index = lease.read_state(lake, lake.marts_index, default={}) or {}
    summary = _write(spark, lake, changed, version)
    days, deleted = summary["days"], summary["deleted_days"]
    if days or deleted:
        for mart in MARTS:
            versions = {d: v for d, v in index.get(mart.name, {}).items() if d not in deleted}
            index[mart.name] = dict(sorted({**versions, **dict.fromkeys(days, version)}.items()))
        lease.write_state(lake, lake.marts_index, index)  # the commit
        faults.point("features.after_commit")
        for mart in MARTS:
            collect(mart.path(lake), days, removed=deleted)
    return summary


def _write(spark: SparkSession, lake: Lake, changed: list[str], version: str) -> dict:
    available = clean_days(lake)
    days = days_to_recompute(changed, available)
    deleted = sorted(set(changed) - set(available))  # days whose rows were all quarantined
    forget_changed_sums(lake, changed)
    faults.point("features.before_writes")
    lease.fence(lake)  # a run that stalled past its lease writes no data
    daily = bool(days) and not deleted and can_step_daily(lake, days, available)
    summary = {"days": days, "deleted_days": deleted, "daily_step": daily}
    if deleted:
        log.info("removing features of days without clean rows: %s", cli.span(deleted))
    if not days:
        log.info("no day to (re)compute")
        return summary
    if daily:
        day = days[0]
        log.info("daily step for %s: edge days and stored window sums only", day)
        each_mart(lambda mart: stage_days(daily_mart(spark, lake, mart, day, available),
                                          mart.path(lake), set(days), version))
        return summary
    start, end = days[0], days[-1]
    log.info("computing features for %d day(s) %s..%s, reading clean from %s", len(days),
             start, end, shift(start, -LOOKBACK_DAYS))
    clean = read_clean(spark, lake, shift(start, -LOOKBACK_DAYS), end).select(
        "transaction_id", "customer_id", "terminal_id", "tx_datetime", "tx_amount", "tx_fraud",
        PARTITION_COLUMN,
    )

    def build(mart: Mart) -> None:
        stage_days(full_mart(clean, mart), mart.path(lake), set(days), version)
        if end == available[-1]:  # the next daily step starts from these sums
            save_sums(lake, mart, full_day_sums(clean, mart, mart.sums_day(end)),
                      mart.sums_day(end), keep=[])
    each_mart(build)
    return summary


def changed_days_of(lake: Lake, clean_run_id: str) -> list[str]:
    summary = storage.read_json(lake.run_summary("clean", clean_run_id))
    if summary is None:
        raise SystemExit(
            f"no clean summary for run {clean_run_id!r} at "
            f"{lake.run_summary('clean', clean_run_id)}: run spark_jobs.clean with that "
            f"--run-id first, or pass --dates/--all"
        )
    return summary["changed_dates"]


def main(argv: list[str] | None = None) -> dict:
    parser = cli.parser(__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--dates", help="comma-separated days that changed (instead of the "
                       "clean run's summary)")
    which.add_argument("--all", action="store_true", help="recompute every clean day")
    args = parser.parse_args(argv)
    cli.setup_logging()
    lake = Lake.from_env(args.lake_root)
    if args.all:
        changed = clean_days(lake)
    elif args.dates:
        changed = sorted(cli.date_arg(d.strip()).isoformat() for d in args.dates.split(","))
    elif args.run_id:
        changed = changed_days_of(lake, args.run_id)
    else:
        parser.error("say which days changed: --run-id of a clean run, --dates or --all")
    run_id = cli.run_id(args.run_id)
    done = storage.read_json(lake.run_summary("features", run_id))
    if done is not None:  # a retry after success: the marts it wrote stand
        if done.get("requested", changed) != changed:
            raise SystemExit(
                f"features run {run_id} finished for the days {done['requested']}, not "
                f"{changed}: give this request a run id of its own")
        log.info("run %s built its features already: %s", run_id, done)
        print(json.dumps(done))
        return done
    from spark_jobs.session import get_spark

    summary = {**run(get_spark("features", lake.root), lake, changed, run_id),
               "requested": changed}  # what a retry must ask for to get this summary back
    storage.write_json(lake.run_summary("features", run_id), summary)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
