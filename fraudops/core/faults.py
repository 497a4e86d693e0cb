"""Named points where a test can kill or pause a step's process, as a lost node or pod, or a
paused container, would.

    FRAUDOPS_KILL_AT=clean.after_manifest python -m spark_jobs.clean ...
    FRAUDOPS_STOP_AT=clean.before_writes python -m spark_jobs.clean ...

At the named point the process SIGKILLs its own process group (its Spark JVM included): no
handler, no cleanup, no finally. Or it SIGSTOPs the group: every thread, the lease's renewer
included, stands still until a SIGCONT. Unset (always, outside tests), a point costs two
lookups.
"""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "FRAUDOPS_KILL_AT"
STOP_AT_ENV = "FRAUDOPS_STOP_AT"


def point(name: str) -> None:
    if os.environ.get(KILL_AT_ENV) == name:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    if os.environ.get(STOP_AT_ENV) == name:
        os.killpg(os.getpgrp(), signal.SIGSTOP)
