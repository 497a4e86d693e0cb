"""Rollback: point the champion alias back at the previous model version.

    python -m fraudops.model.rollback [--model-name fraud-detector] [--tracking-uri URI]

`champion` moves to the version that `previous` points at and the demoted version becomes
`previous`, so running it twice undoes the first rollback. Scoring picks the new champion up on
its next run; nothing is retrained. Needs only MLflow (no Spark): the tracking URI comes from
--tracking-uri, else $MLFLOW_TRACKING_URI, else the local SQLite store. An unreachable or failing
tracking server is an error naming it, never "no @previous version".
"""

from __future__ import annotations

import argparse
import json
import logging

from mlflow import MlflowClient

from fraudops.core import cli, config
from fraudops.core.platform import platform
from fraudops.model import registry, tracking

log = logging.getLogger(__name__)


def run(client: MlflowClient, model_name: str) -> dict:
    demoted = registry.alias_version(client, model_name, registry.CHAMPION)
    champion, previous = registry.rollback(client, model_name)
    log.info("%s: @%s moved from v%s to v%s; @%s is now %s", model_name, registry.CHAMPION,
             demoted or "(none)", champion, registry.PREVIOUS,
             f"v{previous}" if previous else "(unset)")
    return {"model_name": model_name, "rolled_back_from": demoted, "champion_version": champion,
            "previous_version": previous or None}


def main(argv: list[str] | None = None) -> dict:
    model_name = platform()["mlflow"]["model_name"]
    parser = argparse.ArgumentParser(prog="python -m fraudops.model.rollback",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-name", default=model_name,
                        help=f"registered model whose aliases move (default: {model_name})")
    parser.add_argument("--tracking-uri", default=None,
                        help=f"MLflow tracking URI (default: ${config.TRACKING_URI_ENV} or the "
                        "local SQLite store)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    uri = args.tracking_uri or config.tracking_uri()
    with tracking.fail_closed(f"rolling back {args.model_name}", uri):
        summary = run(MlflowClient(tracking_uri=uri), args.model_name)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
