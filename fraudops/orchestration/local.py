"""Run a step on this machine: ``python -m <module> <args>`` (Spark on local[*]).

The child's stdout and stderr are merged and relayed line by line as they come, so a task log
shows Spark's progress live; a non-zero exit fails the step. The child gets its own process
group so that killing the task also stops the JVM the job started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fraudops.core import config
from fraudops.core.steps import RunContext, Step
from fraudops.orchestration.settings import Settings


class StepFailed(RuntimeError):
    pass


def local_command(step: Step, ctx: RunContext) -> list[str]:
    return [sys.executable, "-m", step.module, *step.args(ctx)]


# Variables a developer's shell may carry that would leak into an isolated local run.
INHERITED_PREFIXES = ("AIRFLOW", "FRAUDOPS_", "MLFLOW_")


def isolated_environment(fraudops_home: Path, lake_root: str) -> dict[str, str]:
    """This process's environment without Airflow/fraudops/MLflow settings, then the given home
    and lake: a run (the demo, a benchmark, a test) that nothing in the shell can redirect."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES)}
    env[config.HOME_ENV] = str(fraudops_home)
    env[config.LAKE_ROOT_ENV] = lake_root
    return env


def local_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with the lake, the MLflow store and the home made explicit."""
    env = dict(os.environ)
    env[config.LAKE_ROOT_ENV] = settings.lake_root
    env[config.HOME_ENV] = str(config.home())
    if settings.tracking_uri:
        env[config.TRACKING_URI_ENV] = settings.tracking_uri
    return env


class StepProcess:
    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.command = list(command)
        self.env = {config.LOCAL_JVM_OPTIONS_ENV: config.LOCAL_JVM_OPTIONS,
                    **(os.environ if env is None else env)}
        self._process: subprocess.Popen[str] | None = None

    def run(self, log_line: Callable[[str], None]) -> None:
        """Run to completion, relaying each output line; raise StepFailed on a non-zero exit."""
        with subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        ) as process:
            self._process = process
            assert process.stdout is not None
            for line in process.stdout:
                log_line(line.rstrip("\n"))
            returncode = process.wait()
        if returncode != 0:
            raise StepFailed(f"{' '.join(self.command[:3])} exited with code {returncode}")

    def terminate(self) -> None:
        """Stop the child and everything it started (the Spark JVM), if it is still running."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
