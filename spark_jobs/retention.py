"""Retention step: remove what the loop no longer needs, keep what anything still refers to.

    python -m spark_jobs.retention --lake-root data/lake --run-id <run>

The policy, and the lifecycle rules that do the rest on S3: docs/data.md, "Retention". This
step, holding the lake's lease (it deletes files a writer's state names):

- run summaries (``_state/runs/<step>/<run id>.json``) older than ``summary_days``, unless the
  manifest or the score ledger names their run (a retry, the report and the restatements read
  them);
- drift references (``_state/drift_reference/v<version>.json``) of model versions no longer
  kept (below);
- what readers of the versioned datasets do not resolve: versions a commit replaced, and the
  files a failed or fenced run left (fraudops.core.publication.collect, every day);
- MLflow: model versions that no alias points at, that no kept score row names, and that are
  not among the ``keep_versions`` newest; then the runs older than ``mlflow_run_days`` that
  produced no kept version. Runs are deleted (MLflow's lifecycle stage); ``mlflow gc`` on the
  tracking store purges them and their artifacts.

No PySpark: the step lists and deletes small files and calls MLflow's client.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass

from fraudops.core import cli, lease, publication, scored, storage
from fraudops.core.lake import VERSIONED, Lake

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400
_REFERENCE = re.compile(r"^v(.+)\.json$")


@dataclass(frozen=True)
class Policy:
    summary_days: int = 400  # a DAG run older than this is not retried (its record goes)
    mlflow_run_days: int = 400  # the metric history the report draws
    keep_versions: int = 10  # the newest model versions, aliased or not


def drift_references(lake: Lake) -> str:
    """The folder of the drift references (spark_jobs.score writes one per model version)."""
    return lake.path("_state", "drift_reference")


def referenced_runs(lake: Lake) -> set[str]:
    """Run ids the lake's state still names: each file's cleaning run, each scored day's
    scoring and features runs."""
    runs = {entry.get("run_id") for entry in (storage.read_json(lake.manifest) or {}).values()}
    for entry in scored.ledger(lake).values():
        runs |= {entry.get("run_id"), entry.get("features_run")}
        runs |= {r.get("run_id") for r in entry.get("restatements", [])}
    return {r for r in runs if r}


def scored_versions(lake: Lake) -> set[str]:
    """Model versions that scored a day whose scores are still there (the bucket's lifecycle
    rule expires old score days; their ledger entries then refer to nothing kept)."""
    versions = set()
    for day, entry in scored.ledger(lake).items():
        if storage.exists(lake.partition(lake.scores, day)):
            versions.add(str(entry.get("model_version")))
            versions |= {str(r.get("previous_model_version"))
                         for r in entry.get("restatements", []) if r.get("previous_model_version")}
    return versions


def old_summaries(lake: Lake, now: float, policy: Policy) -> list[str]:
    """Run summaries past ``summary_days`` whose run the state does not name."""
    keep = referenced_runs(lake)
    cutoff_ns = (now - policy.summary_days * DAY_SECONDS) * 1e9
    steps, _ = storage.list_children(lake.path("_state", "runs"))
    return [entry.path for step in steps
            for entry in storage.list_files(lake.path("_state", "runs", step), ".json")
            if entry.mtime_ns < cutoff_ns
            and entry.path.rsplit("/", 1)[1][:-len(".json")] not in keep]


def unused_references(lake: Lake, kept_versions: set[str]) -> list[str]:
    """Drift references of model versions that are not kept."""
    return [entry.path for entry in storage.list_files(drift_references(lake), ".json")
            if (m := _REFERENCE.match(entry.path.rsplit("/", 1)[1]))
            and m.group(1) not in kept_versions]


def kept_versions(client, name: str, lake: Lake, policy: Policy) -> set[str]:
    """Versions an alias points at (@champion, @previous, any other), that a kept score row
    names, and the ``keep_versions`` newest."""
    versions = sorted(client.search_model_versions(f"name='{name}'"),
                      key=lambda v: int(v.version), reverse=True)
    aliases = set(client.get_registered_model(name).aliases.values()) if versions else set()
    return ({str(v) for v in aliases} | scored_versions(lake)
            | {str(v.version) for v in versions[:policy.keep_versions]})


def mlflow_garbage(client, name: str, keep: set[str], now: float, policy: Policy
                   ) -> tuple[list[str], list[str]]:
    """(model versions, run ids) to delete: the versions not in ``keep``, and the runs older
    than ``mlflow_run_days`` that produced no kept version."""
    versions = client.search_model_versions(f"name='{name}'")
    doomed = sorted((str(v.version) for v in versions if str(v.version) not in keep), key=int)
    kept_runs = {v.run_id for v in versions if str(v.version) in keep}
    cutoff_ms = (now - policy.mlflow_run_days * DAY_SECONDS) * 1000
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = []
    if experiments:
        runs = [r.info.run_id for r in client.search_runs(
            experiments, filter_string=f"attributes.start_time < {int(cutoff_ms)}",
            max_results=50_000) if r.info.run_id not in kept_runs]
    return doomed, runs


DEFAULT_POLICY = Policy()


def run(lake: Lake, run_id: str, policy: Policy = DEFAULT_POLICY, client=None,
        model_name: str | None = None, now: float | None = None) -> dict:
    """Delete what the policy lets go; returns what went, by kind. ``client``: an MLflow
    client (None: the lake part only)."""
    now = time.time() if now is None else now
    with lease.held(lake, "retention", run_id):
        deleted: dict[str, list[str]] = {"summaries": old_summaries(lake, now, policy)}
        for path in deleted["summaries"]:
            storage.delete_file(path)
        deleted["unpublished"] = [path for name in VERSIONED
                                  for path in publication.collect(lake.path(name))]
        if client is not None:
            from fraudops.model import tracking

            name = model_name or tracking.MODEL_NAME
            keep = kept_versions(client, name, lake, policy)
            versions, runs = mlflow_garbage(client, name, keep, now, policy)
            for version in versions:
                client.delete_model_version(name, version)
            for mlflow_run in runs:
                client.delete_run(mlflow_run)
            deleted["model_versions"], deleted["mlflow_runs"] = versions, runs
            deleted["drift_references"] = unused_references(lake, keep)
            for path in deleted["drift_references"]:
                storage.delete_file(path)
    summary = {"run_id": run_id, "deleted": deleted,
               "counts": {kind: len(paths) for kind, paths in deleted.items()}}
    storage.write_json(lake.run_summary("retention", run_id), summary)
    log.info("retention: %s", summary["counts"])
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = cli.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--lake-only", action="store_true",
                        help="leave MLflow alone (no tracking server at hand)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    lake = Lake.from_env(args.lake_root)
    client = None
    if not args.lake_only:
        import mlflow

        from fraudops.model import tracking

        with tracking.fail_closed("retention of MLflow runs and versions"):
            tracking.setup()
            client = mlflow.MlflowClient()
            summary = run(lake, cli.run_id(args.run_id), client=client)
    else:
        summary = run(lake, cli.run_id(args.run_id))
    print(json.dumps(summary["counts"]))
    return summary


if __name__ == "__main__":
    main()
