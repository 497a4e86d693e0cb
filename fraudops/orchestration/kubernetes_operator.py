"""The Kubernetes launcher: submit a step's SparkApplication and follow it to the end."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

from kubernetes.client.rest import ApiException

from fraudops.core.platform import platform
from fraudops.core.steps import Step
from fraudops.orchestration.settings import Settings, run_context
from fraudops.orchestration.spark_application import build_spark_application, history_url

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
# How long a stale application of the same step and run may take to go (its pods' grace period).
STALE_DELETE_TIMEOUT_SECONDS = 300
SPARK_API = {"group": "sparkoperator.k8s.io", "version": "v1beta2", "plural": "sparkapplications"}


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
            # The application is named per step, run and try (spark_application_name); a stale
            # one of the same step and run is deleted before the create.
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
        # The provider names the application after self.name when set: this try's name.
        self.name = self.template_spec["metadata"]["name"]
        self.remove_stale_applications(context)
        return super().execute(context)

    def spark_application(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return build_spark_application(
            self.step, run_context(context, self.settings), self.settings,
            attempt=context["ti"].try_number,
        )

    def remove_stale_applications(self, context: Mapping[str, Any]) -> list[str]:
        """Delete this step's applications of this run that this try will not follow, and wait
        until they are gone: an earlier try's (its task pod died before its cleanup, or Airflow
        retried it), and one with this try's own name but no driver to reattach to. Two
        applications of one step and run would write the same outputs and share the quota.
        Returns the names deleted."""
        project = platform()["project"]
        labels = self.template_spec["metadata"]["labels"]
        selector = ",".join(f"{key}={labels[key]}" for key in (f"{project}.io/step",
                                                               f"{project}.io/run-id"))
        current = self.template_spec["metadata"]["name"]
        follow = self.reattach_on_restart and self.find_spark_job(context) is not None
        listed = self.custom_obj_api.list_namespaced_custom_object(
            namespace=self.namespace, label_selector=selector, **SPARK_API)
        stale = [item["metadata"]["name"] for item in listed.get("items", [])
                 if not (follow and item["metadata"]["name"] == current)]
        for name in stale:
            self.log.warning("Deleting stale SparkApplication %s of this step and run", name)
            try:
                self.custom_obj_api.delete_namespaced_custom_object(
                    namespace=self.namespace, name=name, **SPARK_API)
            except ApiException as error:
                if error.status != 404:
                    raise
        deadline = time.monotonic() + STALE_DELETE_TIMEOUT_SECONDS
        for name in stale:
            while self._exists(name):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"SparkApplication {name} still exists "
                                       f"{STALE_DELETE_TIMEOUT_SECONDS}s after its deletion")
                time.sleep(2)
        return stale

    def process_pod_deletion(self, pod, *, reraise=True):
        # The provider deletes the application here, and its status with it: name the step's
        # page on the Spark History Server first.
        if pod is not None:
            self.log_history_url(pod)
        return super().process_pod_deletion(pod, reraise=reraise)

    def log_history_url(self, pod) -> str | None:
        """Log (and return) the application's Spark History Server URL, from the id Spark gave
        it: the SparkApplication's status.sparkApplicationId, else the driver pod's
        spark-app-selector label. Never fails the task: the step's outcome is already decided."""
        name = pod.metadata.name.removesuffix("-driver")
        app_id = None
        try:
            status = self.custom_obj_api.get_namespaced_custom_object_status(
                namespace=self.namespace, name=name, **SPARK_API).get("status") or {}
            app_id = status.get("sparkApplicationId")
        except Exception as error:  # noqa: BLE001 - a log line, never the task's failure
            self.log.warning("No status of SparkApplication %s for its history URL: %s",
                             name, error)
        if not app_id:
            app_id = (getattr(pod.metadata, "labels", None) or {}).get("spark-app-selector")
        if not app_id:
            self.log.info("SparkApplication %s has no Spark application id (never started): no "
                          "Spark History Server page", name)
            return None
        url = history_url(app_id)
        self.log.info("Spark History Server: %s (make port-forward-spark-history; the event log "
                      "shows up a few seconds after the driver ends)", url)
        return url

    def _exists(self, name: str) -> bool:
        try:
            self.custom_obj_api.get_namespaced_custom_object(
                namespace=self.namespace, name=name, **SPARK_API)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True
