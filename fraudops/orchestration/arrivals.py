"""What the DAG's checks read from the lake: the day's raw file, new raw files, clean's verdict.

They import the lake helpers when a task runs, not when the DAG is parsed.
"""

from __future__ import annotations

from typing import Any

from fraudops.core.lake import Lake


def day_file_arrived(lake: Lake, ds: str) -> bool:
    """Whether the raw file of the day ``ds`` is in the lake. A lake root without raw/ is an
    error naming the folder, as for new_raw_files: a wrong root is no missing day."""
    from fraudops.core import rawfiles

    arrived, _ = rawfiles.arrived_files(lake, ds)
    return any(rawfiles.file_day(entry.path.rsplit("/", 1)[-1]) == ds for entry in arrived)


def new_raw_files(lake: Lake, ds: str) -> list[str]:
    """Names of the raw files that arrived by ``ds`` (the demo lake also holds later days) and
    that the manifest does not know as they are now. The clean job owns that rule."""
    from fraudops.core import rawfiles

    return rawfiles.unseen_files(lake, ds)


def clean_summary(lake: Lake, safe_run_id: str, until: str | None = None) -> dict[str, Any]:
    """The clean step's summary of this run; without it the step broke its contract. Given
    ``until`` (the run's day), a summary of another request under the same id is refused."""
    from fraudops.core import storage

    path = lake.run_summary("clean", safe_run_id)
    summary = storage.read_json(path)
    if not isinstance(summary, dict) or "has_new_rows" not in summary:
        raise RuntimeError(f"clean did not write its run summary (with has_new_rows) to {path}")
    if until is not None and summary.get("until") != until:
        raise RuntimeError(f"{path} answers clean --until {summary.get('until')}, not {until}: "
                           "the run id names another request")
    return summary
