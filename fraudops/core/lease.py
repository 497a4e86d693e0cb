"""One writer at a time on a lake's state: a lease with an owner, a run id and an expiry.

Every step that writes the lake's state (clean, features: the manifest, clean_days.json, the
pending days and the window-sums index are read-modify-write) holds the lease of its lake
while it runs:

    with lease.held(lake, "clean", run_id):
        ...

The lease is one small file, ``_state/lease.json``, created only if it is absent (locally an
exclusive create, on S3 a PUT with ``If-None-Match: *``). A second writer waits for it (up to
``FRAUDOPS_LEASE_WAIT_SECONDS``) and then fails naming the holder. The holder renews the expiry
from a background thread; a lease whose expiry has passed belongs to a dead run and is taken
over, and so is one whose owner was a process of this machine that no longer exists. Why and
what each platform guarantees: docs/data.md, "Retries, crashes and overlaps".
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

from fraudops.core import storage
from fraudops.core.lake import Lake

log = logging.getLogger(__name__)

TTL_ENV = "FRAUDOPS_LEASE_SECONDS"
WAIT_ENV = "FRAUDOPS_LEASE_WAIT_SECONDS"
DEFAULT_TTL = 300.0  # renewed every third of it while the run lives
DEFAULT_WAIT = 3600.0
POLL_SECONDS = 1.0


class LeaseBusy(RuntimeError):
    """Another run holds the lake's lease and did not let it go in time."""


class LeaseLost(RuntimeError):
    """The lease this run held was taken over (it could not renew it in time)."""


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
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost: str | None = None

    def record(self) -> dict:
        return {"owner": f"{socket.gethostname()}:{os.getpid()}", "token": self.token,
                "step": self.step, "run_id": self.run_id,
                "expires_at": time.time() + self.ttl}

    @staticmethod
    def _encode(record: dict) -> bytes:
        return (json.dumps(record, sort_keys=True) + "\n").encode()

    def _current(self) -> tuple[dict | None, bytes | None]:
        try:
            data = storage.read_bytes(self.path)
        except FileNotFoundError:
            return None, None
        try:
            return json.loads(data), data
        except ValueError:  # half of a file cannot be: treat it as a dead run's
            return {"expires_at": 0}, data

    @staticmethod
    def stale(record: dict) -> bool:
        if record.get("expires_at", 0) < time.time():
            return True
        host, _, pid = str(record.get("owner", "")).rpartition(":")
        return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))

    def acquire(self, wait: float | None = None) -> None:
        wait = float(wait if wait is not None else os.environ.get(WAIT_ENV, DEFAULT_WAIT))
        deadline = time.monotonic() + wait
        announced = False
        while True:
            if storage.create_exclusive(self.path, self._encode(self.record())):
                break
            holder, seen = self._current()
            if holder is None:
                continue  # released meanwhile
            if self.stale(holder):
                log.warning("taking over the stale lease of %s (run %s, %s)",
                            holder.get("owner"), holder.get("run_id"), holder.get("step"))
                self._break(seen)
                continue
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
        self._renewer = threading.Thread(target=self._renew, daemon=True,
                                         name=f"lease-{self.step}")
        self._renewer.start()

    def _break(self, seen: bytes | None) -> None:
        """Remove the stale lease we read, and only that one."""
        if storage.is_object_store(self.path):
            # S3 has no compare-and-delete: read again right before the delete.
            _, now = self._current()
            if now == seen:
                storage.delete_file(self.path)
            return
        aside = f"{self.path}.stale-{uuid.uuid4().hex}"
        try:
            os.rename(self.path, aside)  # atomic: one breaker gets it
        except FileNotFoundError:
            return
        with open(aside, "rb") as handle:
            taken = handle.read()
        if taken != seen:  # a fresh lease made meanwhile: put it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        os.unlink(aside)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            holder, _ = self._current()
            if not holder or holder.get("token") != self.token:
                self.lost = f"the lease {self.path} is now {holder}"
                log.error("lost the lake's lease: %s", self.lost)
                return
            storage.write_bytes(self.path, self._encode(self.record()))

    def check(self) -> None:
        """Raise unless this run still holds the lease: call before committing state."""
        holder, _ = self._current()
        if self.lost or not holder or holder.get("token") != self.token:
            raise LeaseLost(f"{self.step} {self.run_id} no longer holds {self.path} "
                            f"({self.lost or holder}): another run may be writing the lake")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        holder, _ = self._current()
        if holder and holder.get("token") == self.token:
            storage.delete_file(self.path)


@contextlib.contextmanager
def held(lake: Lake, step: str, run_id: str, ttl: float | None = None,
         wait: float | None = None) -> Iterator[Lease]:
    lease = Lease(lake, step, run_id, ttl)
    lease.acquire(wait)
    try:
        yield lease
    finally:
        lease.release()
