"""Which raw files are new or changed, what their bytes say, and the manifest that remembers them.

This part runs on the driver (and in Airflow's `detect_new_files`): it only lists files and
reads the new ones' bytes once, for a checksum, a decodability check and an independent line
count that the cleaning job's accounting is checked against.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from fraudops.core import lease, storage
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
# A file that is quarantined whole: none of its lines enter Spark's clean or quarantine tables.
# Its day is emptied, as a fresh clean of it would leave it, and the run's summary alerts.
LINE_TOO_LONG = "line_too_long"  # a line longer than MAX_LINE_BYTES: no transaction is
UNACCOUNTABLE = "unaccountable"  # Spark read another number of lines than the driver counted
WHOLE_FILE_REASONS = (LINE_TOO_LONG, UNACCOUNTABLE)

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
    status: str = "new"  # new | changed | restated (unchanged, but its day is cleaned again)

    @property
    def has_rows(self) -> bool:
        return self.rows_in > 0


@dataclass
class Pending:
    """What a cleaning run has to do, decided before Spark starts."""

    to_process: list[RawFile] = field(default_factory=list)
    empty: list[RawFile] = field(default_factory=list)  # files without rows
    quarantined: list[RawFile] = field(default_factory=list)  # files quarantined whole
    unchanged_redeliveries: list[RawFile] = field(default_factory=list)
    ignored_names: list[str] = field(default_factory=list)  # not YYYY-MM-DD.txt

    def add(self, raw: RawFile) -> None:
        """File an inspected file by what cleaning it takes."""
        if raw.file_reason in WHOLE_FILE_REASONS:
            log.error("%s: %s; the file is quarantined whole", raw.name, raw.file_reason)
            self.quarantined.append(raw)
        elif raw.has_rows:
            if raw.file_reason:
                log.error("%s: %s; every line goes to quarantine", raw.name, raw.file_reason)
            self.to_process.append(raw)
        else:
            log.warning("%s: %s, no rows to clean", raw.name, raw.file_reason)
            self.empty.append(raw)


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
    return lease.read_state(lake, lake.manifest, default={}) or {}


def save_manifest(lake: Lake, manifest: dict[str, dict]) -> None:
    lease.write_state(lake, lake.manifest, manifest)  # fenced while the lease is held


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
    """As the cleaning job sees a line: its trailing CRs dropped, then equal to the header."""
    return line.rstrip(b"\r") == _HEADER


READ_CHUNK = 1 << 20  # bytes read at once by inspect
MAX_LINE_BYTES = 1 << 20  # a longer line is no transaction: its file is quarantined whole


def inspect(entry: storage.FileEntry, status: str) -> RawFile:
    """Read a file once, block by block: checksum, decodability, header, longest line and its
    number of data lines.

    Lines end at LF; the CRs before it (CRLF, or CR CR LF from a file converted twice) are not
    part of the line, exactly as the cleaning job reads them (spark_jobs.parsing.read_lines). A
    file with CR line ends only is one line. No more than a block and one line are held at a time, and a
    line longer than MAX_LINE_BYTES is not kept at all: its file is quarantined whole
    (LINE_TOO_LONG) and Spark never reads it.
    """
    name = entry.path.rsplit("/", 1)[-1]
    raw = RawFile(name, entry.path, file_day(name) or "", entry.size, entry.mtime_ns, status=status)
    digest = hashlib.md5(usedforsecurity=False)
    decoder, decodable = codecs.getincrementaldecoder("utf-8")(), True
    n_newlines, n_headers, size = 0, 0, 0
    first: bytes | None = None  # the first line, once it has ended
    carry, too_long, ends_with_newline = b"", False, False
    for block in storage.read_chunks(entry.path, READ_CHUNK):
        digest.update(block)
        size += len(block)
        ends_with_newline = block.endswith(b"\n")
        if decodable:
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                decodable = False
        n_newlines += block.count(b"\n")
        if too_long:
            continue
        buffer = carry + block
        end = buffer.rfind(b"\n")
        if end < 0:
            carry = buffer
        else:
            first_end = buffer.find(b"\n")
            if first_end > MAX_LINE_BYTES:
                too_long = True
            if first is None:
                first = buffer[:first_end]
            complete = buffer[:end]
            if _HEADER in complete:  # a header is rarely repeated: split only where one is
                n_headers += sum(1 for line in complete.split(b"\n") if _is_header(line))
            carry = buffer[end + 1:]
        if len(carry) > MAX_LINE_BYTES:
            too_long = True
    raw.md5 = digest.hexdigest()
    if size == 0:
        raw.file_reason = EMPTY
        return raw
    if decodable:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            decodable = False
    # The final newline ends the last line; it does not start another.
    n_lines = n_newlines + (0 if ends_with_newline else 1)
    if too_long:  # its lines less the header, if it starts with one
        raw.file_reason = LINE_TOO_LONG
        raw.rows_in = n_lines - (first is not None and _is_header(first))
        return raw
    if carry:  # the last line, without a newline
        if first is None:
            first = carry
        n_headers += _is_header(carry)
    if not decodable:
        raw.file_reason = UNDECODABLE
        raw.rows_in = n_lines
        return raw
    if not _is_header(first or b""):
        raw.file_reason = BAD_HEADER
        raw.rows_in = n_lines
        return raw
    raw.rows_in = n_lines - n_headers
    if raw.rows_in == 0:
        raw.file_reason = HEADER_ONLY
    return raw


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
        else:
            pending.add(raw)
    return pending, manifest


def inspect_days(lake: Lake, days: list[str], status: str) -> tuple[list[RawFile], list[str]]:
    """The raw files of ``days`` read again as they are now (to restate those days), and the
    days whose file is no longer there."""
    entries, gone = [], []
    for day in days:
        entry = storage.file_entry(lake.raw_file(day))
        if entry is None:
            gone.append(day)
        else:
            entries.append(entry)
    with ThreadPoolExecutor(max_workers=INSPECT_THREADS) as pool:
        return list(pool.map(lambda entry: inspect(entry, status), entries)), gone


def manifest_entry(raw: RawFile, run_id: str, outcome: dict) -> dict:
    entry = asdict(raw)
    entry.update(run_id=run_id, processed_at=dt.datetime.now(dt.UTC).isoformat(), **outcome)
    return entry
