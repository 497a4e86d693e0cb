"""Named points where a test can kill a step's process, as a lost node or pod would.

    FRAUDOPS_KILL_AT=clean.after_manifest python -m spark_jobs.clean ...

At the named point the process SIGKILLs its own process group (its Spark JVM included): no
handler, no cleanup, no finally. Unset (always, outside tests), a point costs one lookup.
"""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "FRAUDOPS_KILL_AT"


def point(name: str) -> None:
    if os.environ.get(KILL_AT_ENV) == name:
        os.killpg(os.getpgrp(), signal.SIGKILL)
