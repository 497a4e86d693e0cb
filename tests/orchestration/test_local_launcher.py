"""The local launcher: ``python -m <module> <args>`` with live output and a failing exit code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC
from types import SimpleNamespace

import pytest

from fraudops.core.steps import STEPS, RunContext, Step
from fraudops.orchestration.local import StepFailed, StepProcess, local_command, local_environment
from fraudops.orchestration.operators import LocalSparkStepOperator, run_context
from fraudops.orchestration.settings import load_settings
from spark_jobs import entry

RUN_ID = "scheduled__2018-04-02T00:00:00+00:00"


@pytest.fixture
def fake_step_module(tmp_path, monkeypatch):
    """A module ``fake_step`` on PYTHONPATH that prints its arguments, then exits with $EXIT."""
    (tmp_path / "fake_step.py").write_text(
        textwrap.dedent(
            """
            import os, sys
            print("args", *sys.argv[1:], flush=True)
            print("lake", os.environ["FRAUDOPS_LAKE_ROOT"], flush=True)
            print("to stderr", file=sys.stderr, flush=True)
            if __name__ == "__main__":
                sys.exit(int(os.environ.get("EXIT", "0")))
            """
        )
    )
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    )
    return "fake_step"


def test_local_command_is_the_steps_module_and_arguments():
    ctx = RunContext("2018-04-02", RUN_ID, "/lake")
    for step in STEPS.values():
        assert local_command(step, ctx) == [sys.executable, "-m", step.module, *step.args(ctx)]


def test_output_is_relayed_line_by_line_while_the_step_runs(tmp_path):
    """The child waits for proof that its first line was relayed before it prints the next."""
    flag = tmp_path / "first-line-seen"
    child = textwrap.dedent(
        f"""
        import pathlib, sys, time
        print("first", flush=True)
        deadline = time.time() + 20
        while not pathlib.Path({str(flag)!r}).exists():
            if time.time() > deadline:
                print("never relayed", flush=True)
                sys.exit(9)
            time.sleep(0.05)
        print("second", flush=True)
        """
    )
    lines = []

    def relay(line):
        lines.append(line)
        flag.touch()

    StepProcess([sys.executable, "-c", child]).run(relay)
    assert lines == ["first", "second"]


def test_a_failing_step_fails_with_its_exit_code_after_relaying_its_output():
    lines = []
    child = "import sys; print('partial work', flush=True); sys.exit(3)"
    with pytest.raises(StepFailed, match="code 3"):
        StepProcess([sys.executable, "-c", child]).run(lines.append)
    assert lines == ["partial work"]


def test_terminate_stops_the_step_and_what_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    child = textwrap.dedent(
        f"""
        import pathlib, subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pathlib.Path({str(pid_file)!r}).write_text(str(grandchild.pid))
        print("started", flush=True)
        time.sleep(60)
        """
    )
    process = StepProcess([sys.executable, "-c", child])
    outcome = {}

    def run():
        try:
            process.run(lambda line: None)
        except StepFailed as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 20
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    process.terminate()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert "error" in outcome  # killed by a signal: a negative exit code
    grandchild = int(pid_file.read_text())
    deadline = time.time() + 10
    while _alive(grandchild) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its dead parent's reaper) counts as gone.
    status = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return bool(status.stdout.strip()) and not status.stdout.strip().startswith("Z")


def test_environment_names_the_lake_home_and_tracking_store(monkeypatch, tmp_path):
    monkeypatch.setenv("FRAUDOPS_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = local_environment(load_settings())
    assert env["FRAUDOPS_LAKE_ROOT"] == str(tmp_path / "lake")
    assert env["FRAUDOPS_HOME"] == str(tmp_path)
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"
    assert env["SOMETHING_ELSE"] == "kept"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert "MLFLOW_TRACKING_URI" not in local_environment(load_settings())


def test_local_operator_runs_the_step_and_fails_with_it(fake_step_module, monkeypatch, tmp_path):
    monkeypatch.setenv("FRAUDOPS_LAKE_ROOT", str(tmp_path / "lake"))
    settings = load_settings()
    step = Step("train", fake_step_module, "a stand-in module")
    operator = LocalSparkStepOperator(task_id="train", step=step, settings=settings)
    context = {"ds": "2018-04-02", "run_id": RUN_ID}
    operator.render_template_fields(context)
    expected_args = step.args(RunContext("2018-04-02", RUN_ID, str(tmp_path / "lake")))
    assert operator.command == [sys.executable, "-m", fake_step_module, *expected_args]

    lines = []
    monkeypatch.setattr(operator.log, "info", lambda msg, *args: lines.append(msg % args))
    operator.execute(context)
    assert f"args {' '.join(expected_args)}" in lines
    assert f"lake {tmp_path / 'lake'}" in lines
    assert "to stderr" in lines

    monkeypatch.setenv("EXIT", "4")
    with pytest.raises(StepFailed, match="code 4"):
        operator.execute(context)


def test_run_context_without_a_logical_date_uses_the_last_day_ended_when_due(tmp_path):
    from datetime import datetime

    settings = load_settings()
    due = SimpleNamespace(run_after=datetime(2018, 4, 9, 1, 30, tzinfo=UTC))
    ctx = run_context({"run_id": "manual__x", "dag_run": due}, settings)
    assert ctx == RunContext("2018-04-08", "manual__x", settings.lake_root)


def test_extra_step_options_from_the_environment_follow_the_standard_ones(monkeypatch):
    monkeypatch.setenv("FRAUDOPS_PROMOTE_ARGS", "--policy better  --min-days 3")
    monkeypatch.setenv("FRAUDOPS_TRAIN_ARGS", "--grid 'small'")
    settings = load_settings()
    ctx = run_context({"ds": "2018-04-09", "run_id": "manual__x"}, settings)
    promote, train, score = (STEPS[name].args(ctx) for name in ("promote", "train", "score"))
    assert promote[-4:] == ["--policy", "better", "--min-days", "3"]
    assert promote[:-4] == STEPS["promote"].args(RunContext("2018-04-09", "manual__x", ctx.lake_root))
    assert train[-2:] == ["--grid", "small"]
    assert "--policy" not in score and "--grid" not in score


def run_entry(*args: str, env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    """``python entry.py <module> <args>`` as spark-submit runs the SparkApplication's main file."""
    return subprocess.run([sys.executable, entry.__file__, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_entry_runs_a_module_as_main_with_its_arguments(fake_step_module, tmp_path):
    env = {**os.environ, "FRAUDOPS_LAKE_ROOT": "/lake"}
    result = run_entry(fake_step_module, "--run-id", "r1", "--until", "2018-04-02", env=env,
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "args --run-id r1 --until 2018-04-02"
    failing = run_entry(fake_step_module, env={**env, "EXIT": "5"}, cwd=tmp_path)
    assert failing.returncode == 5


def test_entry_puts_the_package_root_first_and_imports_spark_jobs_from_it(tmp_path):
    probe = tmp_path / "probe_module.py"
    probe.write_text("import sys, spark_jobs; print(sys.path[0]); print(spark_jobs.__file__)\n")
    result = run_entry("probe_module", env={**os.environ, "PYTHONPATH": str(tmp_path)},
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first_path, package_file = result.stdout.splitlines()
    assert first_path == str(entry.PACKAGE_ROOT)
    assert package_file == str(entry.PACKAGE_ROOT / "spark_jobs" / "__init__.py")


def test_entry_without_a_module_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, entry.__file__], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "usage" in result.stderr
