"""Which raw files are new or changed, what their bytes say, and the manifest that remembers them.

This part runs on the driver (and in Airflow's `detect_new_files`): it only lists files and
reads the new ones' bytes once, for a checksum, a decodability check and an independent line
count that the cleaning job's accounting is checked against.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from fraudops.core import storage
from fraudops.core.lake import RAW_SUFFIX, Lake
from fraudops.core.rawformat import RAW_HEADER

log = logging.getLogger(__name__)

# A raw file's name: its day, then the suffix (the day is the first group).
DAY_FILE_NAME = r"(\d{4}-\d{2}-\d{2})" + re.escape(RAW_SUFFIX)
_DAY_FILE = re.compile(f"^{DAY_FILE_NAME}$")

# File-level problems. A decodable file with a bad header still enters row by row (every line
# is quarantined with the file's reason); empty and header-only files hold no rows.
EMPTY = "empty_file"
HEADER_ONLY = "header_only"
BAD_HEADER = "bad_header"
UNDECODABLE = "undecodable"

INSPECT_THREADS = 4  # files read and hashed at once (each holds one file's bytes in memory)


@dataclass
class RawFile:
    name: str  # the file's base name, the manifest key
    path: str
    day: str
    size: int
    mtime_ns: int
    md5: str = ""
    rows_in: int = 0  # data lines, counted here independently of Spark
    file_reason: str | None = None  # set for a file whose every line is quarantined
    status: str = "new"  # new | changed

    @property
    def has_rows(self) -> bool:
        return self.rows_in > 0


@dataclass
class Pending:
    """What a cleaning run has to do, decided before Spark starts."""

    to_process: list[RawFile] = field(default_factory=list)
    empty: list[RawFile] = field(default_factory=list)  # new files without rows
    unchanged_redeliveries: list[RawFile] = field(default_factory=list)
    ignored_names: list[str] = field(default_factory=list)  # not YYYY-MM-DD.txt


def file_day(name: str) -> str | None:
    match = _DAY_FILE.match(name)
    if not match:
        return None
    try:
        dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None
    return match.group(1)


def load_manifest(lake: Lake) -> dict[str, dict]:
    return storage.read_json(lake.manifest, default={}) or {}


def save_manifest(lake: Lake, manifest: dict[str, dict]) -> None:
    storage.write_json(lake.manifest, manifest)


def arrived_files(lake: Lake, until: str | None) -> tuple[list[storage.FileEntry], list[str]]:
    """Raw files whose day is not after ``until``, and the names that are not day files.

    A lake without raw/ is an error naming the folder looked at (a wrong root would otherwise
    read as "no new data" every day); an empty raw/ is a day without data.
    """
    arrived, ignored = [], []
    try:
        listed = storage.list_files(lake.raw, RAW_SUFFIX, must_exist=True)
    except storage.FolderNotFound as exc:
        raise storage.FolderNotFound(
            f"the lake has no raw files folder: {lake.raw} is not there (is the lake root "
            f"{lake.root} right?)") from exc
    for entry in listed:
        name = entry.path.rsplit("/", 1)[-1]
        day = file_day(name)
        if day is None:
            ignored.append(name)
        elif until is None or day <= until:
            arrived.append(entry)
    return arrived, ignored


def unseen_files(lake: Lake, until: str | None) -> list[str]:
    """Names of arrived files the manifest does not know in this size and mtime (cheap: no reads)."""
    manifest = load_manifest(lake)
    arrived, _ = arrived_files(lake, until)
    unseen = []
    for entry in arrived:
        name = entry.path.rsplit("/", 1)[-1]
        known = manifest.get(name)
        if not known or (known["size"], known["mtime_ns"]) != (entry.size, entry.mtime_ns):
            unseen.append(name)
    return unseen


_HEADER = RAW_HEADER.encode()


def _is_header(line: bytes) -> bool:
    """As the cleaning job sees a line: a trailing CR dropped, then equal to the header."""
    return line.rstrip(b"\r") == _HEADER


def inspect(entry: storage.FileEntry, status: str) -> RawFile:
    """Read a file once: checksum, decodability, header, and its number of data lines."""
    name = entry.path.rsplit("/", 1)[-1]
    data = storage.read_bytes(entry.path)
    raw = RawFile(name, entry.path, file_day(name) or "", entry.size, entry.mtime_ns, status=status)
    raw.md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if not data:
        raw.file_reason = EMPTY
        return raw
    # The final newline ends the last line; it does not start another.
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raw.file_reason = UNDECODABLE
        raw.rows_in = n_lines
        return raw
    first_end = data.find(b"\n")
    if not _is_header(data if first_end < 0 else data[:first_end]):
        raw.file_reason = BAD_HEADER
        raw.rows_in = n_lines
        return raw
    raw.rows_in = n_lines - header_lines(data)
    if raw.rows_in == 0:
        raw.file_reason = HEADER_ONLY
    return raw


def header_lines(data: bytes) -> int:
    """Lines that are the header (repeated headers are not data) of a file whose first line is
    one; only a file holding the header text more than once is split into lines."""
    if data.count(_HEADER) == 1:
        return 1
    return sum(1 for line in data.split(b"\n") if _is_header(line))


def plan(lake: Lake, until: str | None,
         redo_run: str | None = None) -> tuple[Pending, dict[str, dict]]:
    """Compare the arrived raw files with the manifest and inspect the new or changed ones.

    Files the manifest records as processed by ``redo_run`` are planned again as that run saw
    them: that run is being re-run after it died between saving the manifest and writing its
    summary, and must finish with the same outcome.
    """
    manifest = load_manifest(lake)
    arrived, ignored = arrived_files(lake, until)
    pending = Pending(ignored_names=ignored)
    for name in ignored:
        log.warning("ignoring %s: raw files must be named YYYY-MM-DD%s", name, RAW_SUFFIX)
    candidates, redone = [], set()
    for entry in arrived:
        name = entry.path.rsplit("/", 1)[-1]
        known = manifest.get(name)
        if known and redo_run and known.get("run_id") == redo_run:
            log.info("%s was recorded by run %s, which did not finish: cleaning it again",
                     name, redo_run)
            candidates.append((entry, known.get("status", "new")))
            redone.add(name)
        elif not (known and (known["size"], known["mtime_ns"]) == (entry.size, entry.mtime_ns)):
            candidates.append((entry, "changed" if known else "new"))
    # Reading and hashing release the GIL; on object storage each file is a request of its own.
    with ThreadPoolExecutor(max_workers=INSPECT_THREADS) as pool:
        inspected = list(pool.map(lambda candidate: inspect(*candidate), candidates))
    for raw in inspected:
        name = raw.name
        known = manifest.get(name)
        if known and known.get("md5") == raw.md5 and name not in redone:
            log.info("%s was delivered again unchanged: nothing to do", name)
            pending.unchanged_redeliveries.append(raw)
        elif raw.has_rows:
            if raw.file_reason:
                log.error("%s: %s; every line goes to quarantine", name, raw.file_reason)
            pending.to_process.append(raw)
        else:
            log.warning("%s: %s, no rows to clean", name, raw.file_reason)
            pending.empty.append(raw)
    return pending, manifest


def manifest_entry(raw: RawFile, run_id: str, outcome: dict) -> dict:
    entry = asdict(raw)
    entry.update(run_id=run_id, processed_at=dt.datetime.now(dt.UTC).isoformat(), **outcome)
    return entry
