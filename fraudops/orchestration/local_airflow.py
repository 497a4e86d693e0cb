"""Run the DAG with the real Airflow CLI in a throwaway home, and read back what happened.

For `make demo` and the DAG tests: ``LocalAirflow.dags_test(day)`` runs
``airflow dags test <dag id> <day>`` (every task in-process, Spark steps on local[*]) and
``task_states(day)`` / ``dag_run(day)`` read the outcome from the run's SQLite database.
``airflow_settings`` is the one list of the local Airflow's settings: make/airflow.mk reads it
from ``python -m fraudops.orchestration.local_airflow --home <folder>``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fraudops.core import config
from fraudops.core.platform import platform
from fraudops.orchestration.local import isolated_environment

REPO = Path(__file__).resolve().parents[2]
DAG_ID: str = platform()["airflow"]["dag_id"]
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")


def airflow_settings(airflow_home: Path, fraudops_home: Path) -> dict[str, str]:
    """The settings of a local Airflow: SQLite in ``airflow_home``, the repository's dags/, the
    Spark steps on local[*], fraudops' state in ``fraudops_home``."""
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        # Airflow 3.1.2 signs API and task tokens with an empty-list issuer when this is unset,
        # which PyJWT >= 2.11 refuses ("Issuer (iss) must be a string"): logins and tasks fail.
        "AIRFLOW__API_AUTH__JWT_ISSUER": "fraudops-local",
        "FRAUDOPS_BACKEND": "local",
        "FRAUDOPS_HOME": str(fraudops_home),
    }


def local_airflow_env(
    airflow_home: Path, fraudops_home: Path, lake_root: str | None = None, **extra: str
) -> dict[str, str]:
    """The process environment of a local Airflow: nothing from the shell's Airflow, fraudops
    or MLflow settings, then ``airflow_settings`` and the lake."""
    env = isolated_environment(fraudops_home, lake_root or config.lake_root_in(fraudops_home))
    env.update(airflow_settings(airflow_home, fraudops_home))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


POOLS = {"lake_writer_pool": "one writer of the lake state at a time",
         "model_pool": "one promote or score at a time"}


def migrate_airflow_db(env: dict[str, str]) -> None:
    """Migrate the database and create the pools of one slot, as the chart's job does."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(AIRFLOW_BIN), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )
    for key, description in POOLS.items():
        subprocess.run(
            [str(AIRFLOW_BIN), "pools", "set", platform()["airflow"][key], "1", description],
            env=env, check=True, capture_output=True, timeout=300)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@dataclass(frozen=True)
class DagRunRecord:
    run_id: str
    state: str


@dataclass(frozen=True)
class LocalAirflow:
    env: dict[str, str]
    dag_id: str = DAG_ID

    @classmethod
    def create(
        cls,
        airflow_home: Path,
        fraudops_home: Path,
        lake_root: str | None = None,
        migrated_db: Path | None = None,
        **extra: str,
    ) -> LocalAirflow:
        """A local Airflow with a migrated database (copied from ``migrated_db`` when given)."""
        env = local_airflow_env(airflow_home, fraudops_home, lake_root, **extra)
        airflow_home.mkdir(parents=True, exist_ok=True)
        if migrated_db is not None:
            shutil.copyfile(migrated_db, airflow_home / "airflow.db")
        else:
            migrate_airflow_db(env)
        return cls(env)

    @property
    def database(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "airflow.db"

    def dags_test(
        self,
        logical_date: str,
        timeout: float = 1800,
        log_path: Path | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> subprocess.CompletedProcess:
        """``airflow dags test`` for one day; exit code 1 when the run fails. Output merged,
        written to ``log_path`` as it comes, and each line passed to ``echo`` (progress)."""
        command = [str(AIRFLOW_BIN), "dags", "test", self.dag_id, logical_date]
        lines: list[str] = []
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(open(log_path, "w")) if log_path else None
            process = stack.enter_context(subprocess.Popen(
                command, env=self.env, cwd=self.env["FRAUDOPS_HOME"], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                start_new_session=True,
            ))
            # A run that hangs without printing is stopped too: the whole process group, so no
            # task process is left holding the output pipe open.
            timer = threading.Timer(timeout, _kill_group, (process.pid,))
            timer.start()
            stack.callback(timer.cancel)
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    lines.append(line)
                    if log:
                        log.write(line)
                        log.flush()
                    if echo:
                        echo(line.rstrip("\n"))
            except BaseException:  # Ctrl-C: its own session no longer gets the terminal's signal
                _kill_group(process.pid)
                raise
            returncode = process.wait()
            if not timer.is_alive():
                raise subprocess.TimeoutExpired(command, timeout, "".join(lines))
        return subprocess.CompletedProcess(command, returncode, "".join(lines))

    def dag_run(self, logical_date: str) -> DagRunRecord:
        """The latest run of the DAG for that logical day."""
        row = self._query(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND logical_date LIKE ? "
            "ORDER BY id DESC LIMIT 1",
            (self.dag_id, f"{logical_date}%"),
        )
        if not row:
            raise LookupError(f"no run of {self.dag_id} for {logical_date} in {self.database}")
        return DagRunRecord(*row[0])

    def task_states(self, logical_date: str) -> dict[str, str | None]:
        """task id -> final state (success, skipped, failed, ...) in that day's latest run."""
        run = self.dag_run(logical_date)
        rows = self._query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (self.dag_id, run.run_id),
        )
        return dict(rows)

    def task_durations(self, logical_date: str) -> dict[str, float]:
        """task id -> seconds it ran, in that day's latest run (tasks that ran only: a skipped
        task has a duration of 0)."""
        run = self.dag_run(logical_date)
        rows = self._query(
            "SELECT task_id, duration FROM task_instance WHERE dag_id = ? AND run_id = ? "
            "AND duration IS NOT NULL AND state IN ('success', 'failed', 'up_for_retry')",
            (self.dag_id, run.run_id),
        )
        return {task: float(seconds) for task, seconds in rows}

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        with contextlib.closing(
            sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        ) as connection:
            return connection.execute(sql, params).fetchall()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Print the local Airflow's settings as NAME=value shell words (make/airflow.mk "
                    "runs Airflow with them).")
    parser.add_argument("--home", required=True, type=Path,
                        help="the working folder (make's UI_HOME); Airflow's home is its .airflow/")
    home = parser.parse_args(argv).home.resolve()
    settings = airflow_settings(home / ".airflow", home)
    print(" ".join(f"{name}={shlex.quote(value)}" for name, value in settings.items()))


if __name__ == "__main__":
    main()
