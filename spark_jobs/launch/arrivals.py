"""Which raw files a run has to process: arrived by its logical day and not yet in the manifest.

The clean job owns the manifest (``Lake.manifest``): a JSON object keyed by raw file path whose
entries carry at least ``size``. Entries are matched by file name, not by full path, so a lake
listed as ``s3://`` here and written as ``s3a://`` by Spark (or ``file://`` against a bare
path) still matches. A file counts as new when it is absent from the manifest or its size
changed (a re-delivered day). Files named after a day later than the run's are not there yet
from the run's point of view: the demo lake holds future days.
"""

from __future__ import annotations

import posixpath
from datetime import date
from typing import Any

from spark_jobs.lake import RAW_SUFFIX, Lake


def raw_day(path: str) -> str | None:
    """The YYYY-MM-DD day a raw file is named after, or None for a foreign file."""
    name = posixpath.basename(path)
    if not name.endswith(RAW_SUFFIX):
        return None
    stem = name[: -len(RAW_SUFFIX)]
    try:
        return date.fromisoformat(stem).isoformat() if len(stem) == 10 else None
    except ValueError:
        return None


def processed_sizes(manifest: Any) -> dict[str, int]:
    """File name -> size for every file the manifest records as processed."""
    if not isinstance(manifest, dict):
        return {}
    return {
        posixpath.basename(path): entry["size"]
        for path, entry in manifest.items()
        if isinstance(entry, dict) and "size" in entry
    }


def new_raw_files(lake: Lake, ds: str) -> list[str]:
    """Paths of the raw files that arrived by ``ds`` and have not been processed as they are."""
    from spark_jobs import storage  # pyarrow: imported when a task runs, not when the DAG parses

    processed = processed_sizes(storage.read_json(lake.manifest, default={}))
    return [
        entry.path
        for entry in storage.list_files(lake.raw, RAW_SUFFIX)
        if (day := raw_day(entry.path)) is not None
        and day <= ds
        and processed.get(posixpath.basename(entry.path)) != entry.size
    ]
