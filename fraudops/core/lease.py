"""One writer at a time on a lake's state, and a fence on every commit of that state.

Every step that writes the lake's state (clean, features: the manifest, clean_days.json, the
pending days and the window-sums index are read-modify-write) holds the lease of its lake
while it runs, and reads and writes those files through read_state and write_state:

    with lease.held(lake, "clean", run_id):
        days = lease.read_state(lake, lake.clean_days, default={})
        ...
        lease.write_state(lake, lake.clean_days, days)

The lease is one small file, ``_state/lease.json``: an owner, a run id, an expiry and a
generation that rises with every holder. Every change of it is a compare-and-swap on the
version read before (storage.write_if: ``If-Match``/``If-None-Match: *`` on S3, a locked
compare locally), so taking it, taking over a stale one, renewing it and releasing it are each
one atomic step: two runs cannot both win, and a renewal cannot overwrite a lease another run
took. A second writer waits for it (up to ``FRAUDOPS_LEASE_WAIT_SECONDS``) and then fails naming
the holder. A lease whose expiry has passed belongs to a dead or stalled run and is taken over,
and so is one whose owner was a process of this machine that no longer exists.

The fence: each write of a state file first renews the lease with a compare-and-swap on the
version this holder wrote last (it fails once another run has taken the lease over), then
writes the file with a compare-and-swap on the version this holder read (it fails if anyone
else wrote it since). A holder that stalled past its lease (a paused container, a long GC, a
partition) and comes back therefore cannot commit its stale snapshot: it stops with LeaseLost.
A renewer that fails (the lease taken over, or a storage error) marks the lease lost, and the
holder's next fence or commit stops it. Why and what each platform guarantees: docs/data.md,
"Retries, crashes and overlaps".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fraudops.core import storage
from fraudops.core.lake import Lake

log = logging.getLogger(__name__)

TTL_ENV = "FRAUDOPS_LEASE_SECONDS"
WAIT_ENV = "FRAUDOPS_LEASE_WAIT_SECONDS"
DEFAULT_TTL = 300.0  # renewed every third of it while the run lives
DEFAULT_WAIT = 3600.0
POLL_SECONDS = 1.0

_HELD: dict[str, Lease] = {}  # lake root -> the lease this process holds on it
_UNSEEN = object()


class LeaseBusy(RuntimeError):
    """Another run holds the lake's lease and did not let it go in time."""


class LeaseLost(RuntimeError):
    """The lease this run held was taken over (it could not renew it in time), or a state
    file changed under it: this run must not commit."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    def __init__(self, lake: Lake, step: str, run_id: str, ttl: float | None = None) -> None:
        self.lake, self.step, self.run_id = lake, step, run_id
        self.ttl = float(ttl if ttl is not None else os.environ.get(TTL_ENV, DEFAULT_TTL))
        self.token = uuid.uuid4().hex
        self.path = lake.lease
        self.generation = 0  # the fencing token: this holder's place in the lease's history
        self._version: str | None = None  # of the lease file, as this holder last wrote it
        self._seen: dict[str, str | None] = {}  # state file -> version this holder read
        self._lock = threading.RLock()  # one fence and commit at a time (the marts' threads)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost: str | None = None

    def record(self, **extra) -> dict:
        return {"owner": f"{socket.gethostname()}:{os.getpid()}", "token": self.token,
                "step": self.step, "run_id": self.run_id, "generation": self.generation,
                "expires_at": time.time() + self.ttl, **extra}

    @staticmethod
    def _encode(record: dict) -> bytes:
        return (json.dumps(record, sort_keys=True) + "\n").encode()

    def _current(self) -> tuple[dict | None, str | None]:
        data, version = storage.read_versioned(self.path)
        if data is None:
            return None, None
        try:
            return json.loads(data), version
        except ValueError:  # not a lease: treat it as a dead run's
            return {"expires_at": 0}, version

    @staticmethod
    def stale(record: dict) -> bool:
        if record.get("released") or record.get("expires_at", 0) < time.time():
            return True
        host, _, pid = str(record.get("owner", "")).rpartition(":")
        return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))

    def acquire(self, wait: float | None = None) -> None:
        wait = float(wait if wait is not None else os.environ.get(WAIT_ENV, DEFAULT_WAIT))
        deadline = time.monotonic() + wait
        announced = False
        while True:
            holder, version = self._current()
            if holder is None or self.stale(holder):
                if holder is not None and not holder.get("released"):
                    log.warning("taking over the stale lease of %s (run %s, %s, generation %s)",
                                holder.get("owner"), holder.get("run_id"), holder.get("step"),
                                holder.get("generation"))
                self.generation = int((holder or {}).get("generation", 0)) + 1
                try:  # the very version read: of two runs taking it, one wins
                    self._version = storage.write_if(self.path, self._encode(self.record()),
                                                     version)
                except storage.VersionConflict:
                    continue
                break
            if time.monotonic() >= deadline:
                raise LeaseBusy(
                    f"{self.step} {self.run_id}: the lake {self.lake.root} is being written by "
                    f"{holder.get('step')} of run {holder.get('run_id')} "
                    f"({holder.get('owner')}); waited {wait:.0f} s for its lease {self.path}")
            if not announced:
                log.info("waiting for the lake's lease, held by %s of run %s",
                         holder.get("step"), holder.get("run_id"))
                announced = True
            time.sleep(POLL_SECONDS)
        log.info("%s %s holds the lake's lease, generation %d", self.step, self.run_id,
                 self.generation)
        _HELD[self.lake.root] = self
        self._renewer = threading.Thread(target=self._renew, daemon=True,
                                         name=f"lease-{self.step}")
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.fence()
            except Exception as exc:  # noqa: BLE001 - any failure stops the writer
                with self._lock:
                    self.lost = self.lost or f"its renewal failed: {exc!r}"
                log.error("lost the lake's lease: %s", self.lost)
                return

    def fence(self) -> None:
        """Renew the lease if this run still holds it, in one compare-and-swap; raise LeaseLost
        otherwise. Call before writing what readers see."""
        with self._lock:
            if self.lost:
                raise self._lost_error()
            try:
                self._version = storage.write_if(self.path, self._encode(self.record()),
                                                 self._version)
            except storage.VersionConflict:
                holder, _ = self._current()
                self.lost = f"the lease {self.path} is now {holder}"
                raise self._lost_error() from None

    check = fence  # the name callers used before the fence

    def _lost_error(self) -> LeaseLost:
        return LeaseLost(f"{self.step} {self.run_id} (generation {self.generation}) no longer "
                         f"holds {self.path}: {self.lost}; another run may be writing the lake")

    def seen(self, path: str, version: str | None) -> None:
        with self._lock:
            self._seen[path] = version

    def commit(self, path: str, data: bytes) -> None:
        """Write a state file, fenced: only while this run holds the lease, and only over the
        version of it this run read (or wrote) last."""
        with self._lock:
            self.fence()
            base = self._seen.get(path, _UNSEEN)
            if base is _UNSEEN:  # written without being read: over what is there now
                _, base = storage.read_versioned(path)
            try:
                self._seen[path] = storage.write_if(path, data, base)
            except storage.VersionConflict as exc:
                raise LeaseLost(f"{self.step} {self.run_id}: {path} changed under it since it "
                                f"was read ({exc}): another writer") from exc

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if _HELD.get(self.lake.root) is self:
            del _HELD[self.lake.root]
        if self.lost or self._version is None:
            return
        # Released, not deleted: the next holder's generation follows this one's. A conflict:
        # taken over meanwhile, that lease is another run's.
        with contextlib.suppress(storage.VersionConflict):
            storage.write_if(self.path, self._encode(self.record(released=True, expires_at=0)),
                             self._version)


def holding(lake: Lake) -> Lease | None:
    """The lease this process holds on ``lake``, if any."""
    return _HELD.get(lake.root)


def read_state(lake: Lake, path: str, default: Any = None) -> Any:
    """A state file of ``lake`` (JSON); its version is remembered for the holder's commit."""
    data, version = storage.read_versioned(path)
    held = holding(lake)
    if held is not None:
        held.seen(path, version)
    return default if data is None else json.loads(data)


def write_state(lake: Lake, path: str, value: Any) -> None:
    """Write a state file of ``lake``: fenced (Lease.commit) while this process holds the
    lease; a plain write otherwise (tools and tests working on a lake nobody runs on)."""
    held = holding(lake)
    if held is None:
        storage.write_json(path, value)
    else:
        held.commit(path, storage.json_bytes(value))


def fence(lake: Lake) -> None:
    """Raise LeaseLost unless this process still holds ``lake``'s lease (if it holds one)."""
    held = holding(lake)
    if held is not None:
        held.fence()


@contextlib.contextmanager
def held(lake: Lake, step: str, run_id: str, ttl: float | None = None,
         wait: float | None = None) -> Iterator[Lease]:
    lease = Lease(lake, step, run_id, ttl)
    lease.acquire(wait)
    try:
        yield lease
    finally:
        lease.release()
