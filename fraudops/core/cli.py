"""What every job's command line shares: the lake root, the run id, logging."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from fraudops.core import config
from fraudops.core.steps import is_safe_id, unique_id


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--lake-root",
        default=None,
        help=f"lake root, a local path or s3a://bucket/prefix "
        f"(default: ${config.LAKE_ROOT_ENV} or ./data/lake)",
    )
    p.add_argument(
        "--run-id",
        default=None,
        type=run_id_arg,
        help="id of the pipeline run; names this run's summary: lower-case letters, digits and "
        "inner dashes, as fraudops.core.steps.unique_id makes them (default: a UTC timestamp)",
    )
    return p


def run_id(value: str | None) -> str:
    return value or dt.datetime.now(dt.UTC).strftime("manual-%Y%m%dt%H%M%S")


def run_id_arg(value: str) -> str:
    """A run id as the command line takes it: already safe, since it names files (a summary
    under ``_state/runs/<step>/``); ``../../manifest`` would resolve into the lake's state."""
    if not is_safe_id(value):
        raise argparse.ArgumentTypeError(
            f"not a safe run id: {value!r} (lower-case letters, digits and inner dashes, at most "
            f"63; for example {unique_id(value)!r})")
    return value


def date_arg(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from exc


OUR_LOGGERS = ("fraudops", "spark_jobs", "benchmarks", "__main__")  # __main__: a job run with -m
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """INFO logs of our own loggers on stderr, whatever the libraries do to the root logger.

    Opening a SQLite MLflow store runs alembic's ``logging.config.fileConfig``, which sets the
    root logger to WARNING and adds its own handler: our loggers therefore carry their own
    handler and do not propagate, so a job's progress stays visible after ``tracking.setup()``.
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    for noisy in ("py4j", "urllib3", "botocore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def span(items: list[str]) -> str:
    """A short form of a sorted list for logs: 'a' or 'a .. z (n)'."""
    if not items:
        return "(none)"
    return items[0] if len(items) == 1 else f"{items[0]} .. {items[-1]} ({len(items)})"
