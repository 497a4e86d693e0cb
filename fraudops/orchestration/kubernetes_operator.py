"""The Kubernetes launcher: submit a step's SparkApplication and follow it to the end."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from fraudops.core.steps import Step
from fraudops.orchestration.settings import Settings, run_context
from fraudops.orchestration.spark_application import build_spark_application

with warnings.catch_warnings():
    # Provider 10.9.0 imports airflow.utils.timezone.utcnow, deprecated by Airflow 3.1: not ours
    # to fix, and it would show as a warning on the DAG in the UI.
    warnings.filterwarnings(
        "ignore", message=r"The `airflow\.utils\.timezone\.utcnow` attribute is deprecated"
    )
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import (
        SparkKubernetesOperator,
    )

# The Spark node group scales from zero: a first driver may wait minutes for its node.
DRIVER_STARTUP_TIMEOUT_SECONDS = 900


class SparkStepKubernetesOperator(SparkKubernetesOperator):
    """Submit a step's SparkApplication, follow its driver, delete it when the task ends."""

    def __init__(self, *, step: Step, settings: Settings, **kwargs: Any) -> None:
        super().__init__(
            namespace=settings.jobs_namespace,
            kubernetes_conn_id=settings.kubernetes_conn_id,
            get_logs=True,
            log_events_on_failure=True,
            delete_on_termination=True,
            success_run_history_limit=1,
            startup_timeout_seconds=DRIVER_STARTUP_TIMEOUT_SECONDS,
            # The template names the application per step and run; a retry reuses the name
            # once the failed attempt's application has been deleted.
            random_name_suffix=False,
            **kwargs,
        )
        self.step = step
        self.settings = settings

    def render_template_fields(self, context, jinja_env=None) -> None:
        self.template_spec = self.spark_application(context)
        super().render_template_fields(context, jinja_env)

    def execute(self, context):
        if not self.template_spec:
            self.template_spec = self.spark_application(context)
        return super().execute(context)

    def spark_application(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return build_spark_application(
            self.step, run_context(context, self.settings), self.settings
        )
