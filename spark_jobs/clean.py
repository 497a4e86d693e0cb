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

import datetime as dt
import json
import logging
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from fraudops.core import cli, faults, lease, rawfiles, storage
from fraudops.core import pending as pending_work
from fraudops.core.lake import PARTITION_COLUMN, RAW_SUFFIX, Lake, write_version
from fraudops.core.publication import collect
from fraudops.core.rawformat import DUPLICATE_ID
from spark_jobs import dedup
from spark_jobs.datasets import read_partitions, stage_days
from spark_jobs.parsing import parse, read_lines
from spark_jobs.schema import CLEAN_SCHEMA, QUARANTINE_SCHEMA

log = logging.getLogger(__name__)


def written_rows(spark: SparkSession, path: str, schema, days: set[str], version: str
                 ) -> Counter:
    """Rows per day as read back from the Parquet this run wrote as ``version``, before it is
    published (footer counts, no data scan)."""
    counts = read_partitions(spark, path, sorted(days), schema,
                             versions=dict.fromkeys(days, version)).groupBy(
        PARTITION_COLUMN).count()
    return Counter({row[0].isoformat(): row[1] for row in counts.collect()})


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

    Days outside the batch whose copies an earlier day decides are restated (dedup.days_to_restate);
    a file whose lines Spark counts otherwise than the driver is quarantined whole
    (UNACCOUNTABLE) and the others go on. Every day rewritten is recorded as pending before the
    first write, for features and for the next clean (see fraudops.core.pending).
    """
    day_stats = lease.read_state(lake, lake.clean_days, default={}) or {}
    manifest = manifest if manifest is not None else rawfiles.load_manifest(lake)
    ranges = dedup.valid_ranges(manifest, day_stats)
    files, emptied, restated = list(files), list(emptied), []
    parsed = ids = None
    while True:
        changing = {f.day for f in files} | {f.day for f in emptied}
        old = [(d, *ranges[d]) for d in sorted(changing) if d in ranges]
        if files:
            read_days = {f.day for f in files}
            parsed = parse(read_lines(spark, files)).persist()
            ids = dedup.id_spans(parsed)
            wrong = _unaccountable(files, ids)
            if wrong:
                files = [f for f in files if f not in wrong]
                emptied += wrong
                ids = ids.without({dt.date.fromisoformat(f.day) for f in wrong})
            new = [(d.isoformat(), low, high) for d, low, high in ids.spans]
        else:
            new = []
        others = {d: r for d, r in ranges.items() if d not in changing}
        more = dedup.days_to_restate(old + new, others)
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

    hit_days = dedup.clean_days_meeting(ids, day_stats, replaced=set(rewritten))
    existing = None
    if hit_days:
        log.info("checking incoming ids against clean days %s", cli.span(hit_days))
        existing = read_partitions(spark, lake.clean, hit_days, CLEAN_SCHEMA).select(
            "transaction_id")
    check = dedup.repeat_check(ids)
    if check.suspect_days or check.listed_ids:
        log.info("checking for repeats: every id of %d day(s), %d id(s) that two spans share",
                 len(check.suspect_days), len(check.listed_ids))
    batch = parsed
    if read_days != set(days):  # a file set aside after it was read
        batch = parsed.where(F.col(PARTITION_COLUMN).isin(
            [dt.date.fromisoformat(d) for d in days]))
    duplicates = dedup.duplicate_rows(spark, batch, existing, check)
    if duplicates is not None:
        duplicates = duplicates.persist()  # small; used by three passes
    classified = dedup.mark_duplicates(batch, duplicates)

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


def _unaccountable(files: list[rawfiles.RawFile], ids: dedup.IdSpans) -> list[rawfiles.RawFile]:
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
