"""The lake's lease: one holder at a time across processes; a dead holder's lease expires."""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from fraudops.core import lease
from fraudops.core.lake import Lake


def _hold_and_count(root: str, run_id: str, log_path: str) -> None:
    with lease.held(Lake(root), "clean", run_id, wait=60):
        with open(log_path, "a") as log:
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
    lines = open(log_path).read().split()
    events = list(zip(lines[::2], lines[1::2]))
    assert len(events) == 6
    for enter, leave in zip(events[::2], events[1::2]):  # in/out pairs of one run each
        assert enter[0] == "in" and leave == ("out", enter[1])
    assert not os.path.exists(lake.lease)


def _write_lease(lake: Lake, **record) -> None:
    os.makedirs(os.path.dirname(lake.lease), exist_ok=True)
    with open(lake.lease, "w") as handle:
        json.dump({"owner": "elsewhere:1", "token": "t", "step": "features", "run_id": "old",
                   "expires_at": time.time() + 60, **record}, handle)


def test_a_live_holder_makes_the_second_writer_fail_naming_it(tmp_path):
    lake = Lake(str(tmp_path))
    _write_lease(lake)
    with pytest.raises(lease.LeaseBusy, match="features of run old"):
        with lease.held(lake, "clean", "new", wait=0.5):
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
        assert json.load(open(lake.lease))["run_id"] == "new"
        held.check()
    assert not os.path.exists(lake.lease)


def test_a_holder_renews_its_lease_and_notices_losing_it(tmp_path):
    lake = Lake(str(tmp_path))
    with lease.held(lake, "clean", "r1", ttl=0.6) as held:
        first = json.load(open(lake.lease))["expires_at"]
        time.sleep(0.5)
        assert json.load(open(lake.lease))["expires_at"] > first  # renewed
        _write_lease(lake)  # taken over by another run
        with pytest.raises(lease.LeaseLost):
            held.check()
    assert os.path.exists(lake.lease)  # the other run's lease is left alone


def test_on_s3_the_lease_is_a_conditional_create(s3_server, monkeypatch):
    """On an s3a:// lake the lease is a PUT with If-None-Match: * (moto's S3 here)."""
    from fraudops.core import storage
    from tests import servers

    for name, value in {**servers.S3_KEYS, "FRAUDOPS_S3_ENDPOINT": s3_server,
                        "AWS_REGION": servers.S3_REGION}.items():
        monkeypatch.setenv(name, value)
    storage._s3.cache_clear()
    lake = Lake(f"s3a://{servers.ARTIFACTS_BUCKET}/lease-test")
    try:
        assert storage.create_exclusive(lake.path("_state", "probe"), b"1")
        assert not storage.create_exclusive(lake.path("_state", "probe"), b"2")
        assert storage.read_bytes(lake.path("_state", "probe")) == b"1"
        with lease.held(lake, "clean", "r1", wait=0.5) as held:
            with pytest.raises(lease.LeaseBusy, match="clean of run r1"):
                lease.Lease(lake, "features", "r2").acquire(wait=0.5)
            held.check()
        assert not storage.exists(lake.lease)
    finally:
        storage._s3.cache_clear()
