"""The lake's lease: one holder at a time across processes; a dead holder's lease expires; a
holder that lost it commits nothing (issue 45: the lease is a fence)."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from fraudops.core import lease, storage
from fraudops.core.lake import Lake


def _lease(lake: Lake) -> dict:
    return json.loads(Path(lake.lease).read_text())


def _released(lake: Lake) -> bool:
    """Released: the file stays, marked, so that the next holder's generation follows."""
    return json.loads(storage.read_bytes(lake.lease)).get("released") is True


def _hold_and_count(root: str, run_id: str, log_path: str) -> None:
    with lease.held(Lake(root), "clean", run_id, wait=60), open(log_path, "a") as log:
        log.write(f"in {run_id}\n")
        log.flush()
        time.sleep(0.3)
        log.write(f"out {run_id}\n")


def test_two_processes_never_hold_the_lease_at_once(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    log_path = str(tmp_path / "log")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hold_and_count, args=(lake.root, f"r{i}", log_path))
               for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    lines = Path(log_path).read_text().split()
    events = list(zip(lines[::2], lines[1::2]))
    assert len(events) == 6
    for enter, leave in zip(events[::2], events[1::2]):  # in/out pairs of one run each
        assert enter[0] == "in" and leave == ("out", enter[1])
    assert _released(lake)
    assert _lease(lake)["generation"] == 3  # one per holder


def _write_lease(lake: Lake, **record) -> None:
    os.makedirs(os.path.dirname(lake.lease), exist_ok=True)
    with open(lake.lease, "w") as handle:
        json.dump({"owner": "elsewhere:1", "token": "t", "step": "features", "run_id": "old",
                   "expires_at": time.time() + 60, **record}, handle)


def test_a_live_holder_makes_the_second_writer_fail_naming_it(tmp_path):
    lake = Lake(str(tmp_path))
    _write_lease(lake)
    with pytest.raises(lease.LeaseBusy, match="features of run old"), \
            lease.held(lake, "clean", "new", wait=0.5):
        pass


@pytest.mark.parametrize("record", [
    {"expires_at": 0},  # expired: its run died without renewing it
    {"owner": "HOST:PID"},  # a process of this machine that no longer exists
])
def test_a_stale_lease_from_a_dead_run_is_taken_over(tmp_path, record):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    record = {k: (v.replace("HOST", socket.gethostname()).replace("PID", dead)
                  if isinstance(v, str) else v) for k, v in record.items()}
    lake = Lake(str(tmp_path))
    _write_lease(lake, **record)
    with lease.held(lake, "clean", "new", wait=0.5) as held:
        assert _lease(lake)["run_id"] == "new"
        held.check()
    assert _released(lake)


def test_a_holder_renews_its_lease_and_notices_losing_it(tmp_path):
    lake = Lake(str(tmp_path))
    with lease.held(lake, "clean", "r1", ttl=0.6) as held:
        first = _lease(lake)["expires_at"]
        time.sleep(0.5)
        assert _lease(lake)["expires_at"] > first  # renewed
        _write_lease(lake)  # taken over by another run
        with pytest.raises(lease.LeaseLost):
            held.check()
    assert _lease(lake)["run_id"] == "old"  # the other run's lease is left alone


def test_on_s3_the_lease_is_a_conditional_create(s3_server, monkeypatch):
    """On an s3a:// lake the lease is a PUT with If-None-Match: * or If-Match: <ETag> (moto's
    S3 here, whose version implements both for PutObject), and so is every fenced commit."""
    from tests import servers

    for name, value in {**servers.S3_KEYS, "FRAUDOPS_S3_ENDPOINT": s3_server,
                        "AWS_REGION": servers.S3_REGION}.items():
        monkeypatch.setenv(name, value)
    storage._s3.cache_clear()
    storage._boto3.cache_clear()
    lake = Lake(f"s3a://{servers.ARTIFACTS_BUCKET}/lease-test")
    try:
        assert storage.create_exclusive(lake.path("_state", "probe"), b"1")
        assert not storage.create_exclusive(lake.path("_state", "probe"), b"2")
        assert storage.read_bytes(lake.path("_state", "probe")) == b"1"
        with lease.held(lake, "clean", "r1", wait=0.5) as held:
            with pytest.raises(lease.LeaseBusy, match="clean of run r1"):
                lease.Lease(lake, "features", "r2").acquire(wait=0.5)
            held.check()
        assert _released(lake)
        _a_stale_holder_commits_nothing(lake)
    finally:
        storage._s3.cache_clear()
        storage._boto3.cache_clear()


def _a_stale_holder_commits_nothing(lake: Lake) -> None:
    """A holds the lease and read the state; it stalls past its expiry (no renewal); B takes
    it over and commits. A comes back: its commit fails, B's state stands."""
    path = lake.path("_state", "clean_days.json")
    storage.write_json(path, {"d1": 1})
    a = lease.Lease(lake, "clean", "A", ttl=0.3)
    a.acquire(wait=0.5)
    a._stop.set()  # stalled: its renewer stands still as well
    a._renewer.join()
    assert lease.read_state(lake, path) == {"d1": 1}
    time.sleep(0.4)
    lease._HELD.pop(lake.root)  # B runs in another process
    with lease.held(lake, "clean", "B", wait=2) as b:
        assert b.generation == a.generation + 1
        lease.write_state(lake, path, {"d1": 1, "d2": 2})
    lease._HELD[lake.root] = a  # A resumes
    with pytest.raises(lease.LeaseLost, match="generation"):
        lease.write_state(lake, path, {"d1": 1, "stale": True})
    lease._HELD.pop(lake.root)
    assert lease.read_state(lake, path) == {"d1": 1, "d2": 2}


def test_a_stale_holder_commits_nothing_locally(tmp_path):
    _a_stale_holder_commits_nothing(Lake(str(tmp_path / "lake")))


def test_a_state_file_changed_under_its_holder_is_not_overwritten(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    path = lake.path("_state", "manifest.json")
    storage.write_json(path, {"a": 1})
    with lease.held(lake, "clean", "r1", wait=0.5):
        lease.read_state(lake, path)
        storage.write_json(path, {"written": "by a writer outside the lease"})
        with pytest.raises(lease.LeaseLost, match="changed under it"):
            lease.write_state(lake, path, {"a": 1, "b": 2})
    assert storage.read_json(path) == {"written": "by a writer outside the lease"}


def test_a_renewer_that_fails_stops_its_writer(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    with lease.held(lake, "clean", "r1", ttl=0.3, wait=0.5) as held:
        def broken(*args, **kwargs):
            raise OSError("injected: the object store is unreachable")
        with monkeypatch.context() as patch:
            patch.setattr(storage, "write_if", broken)
            held._renewer.join(2)  # its first renewal fails, and it stops
        assert not held._renewer.is_alive() and "unreachable" in held.lost
        with pytest.raises(lease.LeaseLost, match="unreachable"):
            lease.write_state(lake, lake.clean_days, {})
    assert not os.path.exists(lake.clean_days)


def test_of_two_runs_taking_over_a_stale_lease_one_wins(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    _write_lease(lake, expires_at=0)
    _, version = storage.read_versioned(lake.lease)
    storage.write_if(lake.lease, b'{"run_id": "first", "expires_at": 1e12}', version)
    with pytest.raises(storage.VersionConflict):  # the second one read the same stale lease
        storage.write_if(lake.lease, b'{"run_id": "second", "expires_at": 1e12}', version)
    assert _lease(lake)["run_id"] == "first"
