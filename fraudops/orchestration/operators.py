"""The Airflow side of a Spark step: one task per step, whatever the backend.

``spark_step`` returns a task with the step's name as task id, so the graph is the same on both
backends; only the launcher differs:

- kubernetes: kubernetes_operator.SparkStepKubernetesOperator submits the step's
  SparkApplication and follows its driver (logs in the task log; deleted when the task ends);
- local: a subprocess ``python -m <module> <args>`` on local[*], its output in the task log.

Both build their launch spec (SparkApplication or command line) when Airflow renders the task,
from the run's logical day and id: the UI's "Rendered Template" tab shows exactly what ran.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from fraudops.core.steps import Step
from fraudops.orchestration.local import StepProcess, local_command, local_environment
from fraudops.orchestration.settings import Settings, run_context


class LocalSparkStepOperator(BaseOperator):
    """Run a step as ``python -m <module> <args>`` on this worker, output in the task log."""

    template_fields = ("command",)
    ui_color = "#fde0b2"

    def __init__(self, *, step: Step, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.settings = settings
        self.command: list[str] = []
        self._process: StepProcess | None = None

    def render_template_fields(self, context, jinja_env=None) -> None:
        self.command = local_command(self.step, run_context(context, self.settings))
        super().render_template_fields(context, jinja_env)

    def execute(self, context) -> None:
        command = self.command or local_command(self.step, run_context(context, self.settings))
        self.log.info("Running %s", " ".join(command))
        self._process = StepProcess(command, local_environment(self.settings))
        self._process.run(lambda line: self.log.info("%s", line))

    def on_kill(self) -> None:
        if self._process is not None:
            self._process.terminate()


def spark_step(step: Step, settings: Settings, **kwargs: Any) -> BaseOperator:
    """The task that runs ``step`` on the configured backend, with ``step.name`` as task id."""
    operator: type[BaseOperator] = LocalSparkStepOperator
    if settings.on_kubernetes:  # the provider is imported only when used
        from fraudops.orchestration.kubernetes_operator import SparkStepKubernetesOperator

        operator = SparkStepKubernetesOperator
    return operator(
        task_id=step.name, step=step, settings=settings, doc_md=step.description, **kwargs
    )
