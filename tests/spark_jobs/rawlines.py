"""Raw lines and files for tests, in the delivered format."""

from __future__ import annotations

import os

from fraudops.core.lake import Lake
from spark_jobs.schema import RAW_HEADER


def write_raw(lake: Lake, day: str, lines: list[str], header: bool = True) -> str:
    """Write a raw day file as delivered: the header line, then ``lines``."""
    path = lake.raw_file(day)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    body = ([RAW_HEADER] if header else []) + lines
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in body))
    return path


def row(tx_id: int, ts: str, customer: int = 1, terminal: int = 2, amount: str = "10.00",
        fraud: int = 0, scenario: int = 0) -> str:
    """A valid raw line (seconds and day index are not checked against the timestamp)."""
    return f"{tx_id},{ts},{customer},{terminal},{amount},0,0,{fraud},{scenario}"
