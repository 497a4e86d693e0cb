"""The Kubernetes launcher, exercised through the provider up to the API call (a fake client)."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from unittest import mock

import jsonschema
import pytest
import yaml
from kubernetes.client.rest import ApiException

from fraudops.core.steps import STEPS, RunContext, unique_id
from fraudops.orchestration.spark_application import build_spark_application
from tests.paths import REPO

RUN_ID = "scheduled__2018-04-02T00:00:00+00:00"
TEMPLATE = REPO / "k8s" / "spark" / "sparkapplication.template.yaml"


class Submitted(Exception):
    """Raised by the fake API once it has recorded what the operator submitted."""


def airflow_context(dag, task_id: str) -> dict:
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id=task_id, try_number=1, map_index=-1)
    return {
        "ds": "2018-04-02",
        "run_id": RUN_ID,
        "ti": ti,
        "task_instance": ti,
        "dag": dag,
        "dag_run": SimpleNamespace(run_id=RUN_ID),
    }


def submit(operator, context):
    """Run the operator against fake Kubernetes clients: (the create call's kwargs, the core API)."""
    core = mock.Mock()
    core.list_namespaced_pod.return_value = SimpleNamespace(items=[])
    custom = mock.Mock()
    custom.list_namespaced_custom_object.return_value = {"items": []}  # nothing stale
    custom.create_namespaced_custom_object.side_effect = Submitted
    operator.__dict__["client"] = core  # the provider's cached properties
    operator.__dict__["custom_obj_api"] = custom
    operator.render_template_fields(context)
    with pytest.raises(Submitted):
        operator.execute(context)
    (call,) = custom.create_namespaced_custom_object.call_args_list
    return call.kwargs, core


@pytest.mark.parametrize("name", sorted(STEPS))
def test_operator_submits_the_built_application(kubernetes_dag, name, sparkapplication_schema):
    operator = kubernetes_dag.get_task(name)
    context = airflow_context(kubernetes_dag, name)
    request, core = submit(operator, context)

    settings = operator.settings
    expected = build_spark_application(
        STEPS[name], RunContext("2018-04-02", RUN_ID, settings.lake_root), settings, attempt=1
    )
    assert request["group"] == "sparkoperator.k8s.io"
    assert request["version"] == "v1beta2"
    assert request["plural"] == "sparkapplications"
    assert request["namespace"] == settings.jobs_namespace == expected["metadata"]["namespace"]
    body = request["body"]
    # The provider keeps our name (no random suffix) and adds its own reattach labels.
    assert body["metadata"]["name"] == expected["metadata"]["name"]
    assert body["metadata"]["labels"] == expected["metadata"]["labels"]
    for role in ("driver", "executor"):
        labels = body["spec"][role]["labels"]
        assert labels.items() >= expected["spec"][role]["labels"].items()
        assert labels["task_id"] == name and labels["dag_id"] == kubernetes_dag.dag_id
        assert {k: v for k, v in body["spec"][role].items() if k != "labels"} == {
            k: v for k, v in expected["spec"][role].items() if k != "labels"
        }
    for field in ("arguments", "image", "mainApplicationFile", "sparkConf", "dynamicAllocation"):
        assert body["spec"][field] == expected["spec"][field]
    # What the API server receives validates against the CRD (it prunes the provider's extra
    # spec.labels, which the CRD does not know).
    jsonschema.Draft7Validator(sparkapplication_schema).validate(body)
    # Reattachment looked for a driver of this task first.
    selector = core.list_namespaced_pod.call_args.kwargs["label_selector"]
    assert f"task_id={name}" in selector and "spark-role=driver" in selector


def test_rendered_template_shows_the_application(kubernetes_dag):
    operator = kubernetes_dag.get_task("train")
    operator.render_template_fields(airflow_context(kubernetes_dag, "train"))
    assert operator.template_spec["metadata"]["name"].startswith("fraud-retraining-train-")
    assert operator.template_spec["spec"]["arguments"][-2:] == ["--as-of", "2018-04-02"]
    assert unique_id(RUN_ID) in operator.template_spec["spec"]["arguments"]


def test_operator_is_configured_to_clean_up_and_stream_logs(kubernetes_dag):
    for name in STEPS:
        operator = kubernetes_dag.get_task(name)
        assert operator.delete_on_termination is True
        assert operator.get_logs is True
        assert operator.random_name_suffix is False
        assert operator.namespace == operator.settings.jobs_namespace
        assert operator.kubernetes_conn_id == "kubernetes_default"
        assert operator.success_run_history_limit == 1


# --- retries: each try its own application, leftovers of earlier tries deleted first -----------


class FakeSparkApplications:
    """The SparkApplications of the jobs namespace as the API server keeps them (the calls of
    kubernetes.client.CustomObjectsApi the provider and the operator make)."""

    def __init__(self, state: str = "SUBMITTED"):
        self.apps: dict[str, dict] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.state = state

    def add(self, app: dict) -> None:
        self.apps[app["metadata"]["name"]] = app

    def list_namespaced_custom_object(self, *, label_selector, **_):
        wanted = dict(part.split("=", 1) for part in label_selector.split(","))
        return {"items": [a for a in self.apps.values()
                          if wanted.items() <= a["metadata"].get("labels", {}).items()]}

    def get_namespaced_custom_object(self, *, name, **_):
        if name not in self.apps:
            raise ApiException(status=404, reason="Not Found")
        return self.apps[name]

    def delete_namespaced_custom_object(self, *, name, **_):
        if name not in self.apps:
            raise ApiException(status=404, reason="Not Found")
        del self.apps[name]
        self.deleted.append(name)

    def create_namespaced_custom_object(self, *, body, **_):
        name = body["metadata"]["name"]
        if name in self.apps:
            raise ApiException(status=409, reason="AlreadyExists")
        self.apps[name] = body
        self.created.append(name)
        return body

    def get_namespaced_custom_object_status(self, *, name, **_):
        return {"status": {"applicationState": {"state": self.state,
                                                "errorMessage": "webhook timed out"}}}


def run_try(operator, dag, api: FakeSparkApplications, try_number: int):
    """One try of the task against the fake API; returns the exception it ended with."""
    core = mock.Mock()
    core.list_namespaced_pod.return_value = SimpleNamespace(items=[])
    operator.__dict__["client"] = core
    operator.__dict__["custom_obj_api"] = api
    operator.__dict__.pop("launcher", None)
    operator.template_spec = None
    context = airflow_context(dag, operator.task_id)
    context["ti"].try_number = try_number
    operator.render_template_fields(context)
    with pytest.raises(Exception) as failure:
        operator.execute(context)
    return failure.value


def test_each_try_submits_under_its_own_name(kubernetes_dag):
    operator = kubernetes_dag.get_task("train")
    names = set()
    for try_number in (1, 2, 3):
        context = airflow_context(kubernetes_dag, "train")
        context["ti"].try_number = try_number
        names.add(operator.spark_application(context)["metadata"]["name"])
    assert len(names) == 3
    assert all(len(n) <= 63 and n.startswith("fraud-retraining-train-") for n in names)


def test_a_failed_submission_fails_the_try_and_the_retry_replaces_it(kubernetes_dag):
    """spark-operator does not retry submissions (the provider could not follow them): the
    application ends FAILED, the task fails, and Airflow's next try deletes the leftover and
    submits again under a new name instead of colliding with it."""
    template = yaml.safe_load(TEMPLATE.read_text())
    assert template["spec"]["restartPolicy"]["onSubmissionFailureRetries"] == 0
    operator = kubernetes_dag.get_task("clean")
    api = FakeSparkApplications(state="FAILED")
    error = run_try(operator, kubernetes_dag, api, try_number=1)
    assert "Spark Job Failed" in str(error)
    (first,) = api.created
    assert first in api.apps, "the failed try's application is left behind"

    api.state = "SUBMITTED"
    api.create_namespaced_custom_object = mock.Mock(side_effect=Submitted)
    assert isinstance(run_try(operator, kubernetes_dag, api, try_number=2), Submitted)
    assert api.deleted == [first]
    (call,) = api.create_namespaced_custom_object.call_args_list
    assert call.kwargs["body"]["metadata"]["name"] not in (first,)


def test_a_leftover_of_a_dead_try_is_deleted_before_the_create(kubernetes_dag):
    operator = kubernetes_dag.get_task("features")
    api = FakeSparkApplications()
    context = airflow_context(kubernetes_dag, "features")
    dead = operator.spark_application(context)  # try 1, whose task pod died
    other_step = copy.deepcopy(dead)
    other_step["metadata"]["name"] = "fraud-retraining-clean-other"
    other_step["metadata"]["labels"]["fraudops.io/step"] = "clean"
    api.add(dead)
    api.add(other_step)
    api.create_namespaced_custom_object = mock.Mock(side_effect=Submitted)
    assert isinstance(run_try(operator, kubernetes_dag, api, try_number=2), Submitted)
    assert api.deleted == [dead["metadata"]["name"]]
    assert other_step["metadata"]["name"] in api.apps
    body = api.create_namespaced_custom_object.call_args.kwargs["body"]
    assert body["metadata"]["name"] != dead["metadata"]["name"]


def test_the_same_try_reattaches_to_its_running_driver(kubernetes_dag):
    """A worker restarted within one try finds its own driver: that application is kept."""
    operator = kubernetes_dag.get_task("score")
    api = FakeSparkApplications()
    context = airflow_context(kubernetes_dag, "score")
    own = operator.spark_application(context)
    api.add(own)
    operator.template_spec = own
    operator.__dict__["custom_obj_api"] = api
    with mock.patch.object(type(operator), "find_spark_job", return_value=object()):
        assert operator.remove_stale_applications(context) == []
    assert own["metadata"]["name"] in api.apps
    with mock.patch.object(type(operator), "find_spark_job", return_value=None):
        assert operator.remove_stale_applications(context) == [own["metadata"]["name"]]


# --- the Spark History Server page of each step ---------------------------------------------


class FakeStatus(FakeSparkApplications):
    """The API server's status subresource: gone with its application."""

    def __init__(self, app_id: str | None):
        super().__init__()
        self.app_id = app_id
        self.status_reads: list[str] = []

    def get_namespaced_custom_object_status(self, *, name, **_):
        if name not in self.apps:
            raise ApiException(status=404, reason="Not Found")
        self.status_reads.append(name)
        status = {"applicationState": {"state": "COMPLETED"}}
        if self.app_id:
            status["sparkApplicationId"] = self.app_id
        return {"status": status}


def driver_pod(app: dict, labels: dict | None = None):
    name = f"{app['metadata']['name']}-driver"
    return SimpleNamespace(metadata=SimpleNamespace(name=name, labels=labels or {}))


def finish(operator, dag, api: FakeStatus, pod_labels: dict | None = None):
    """The end of a task: the provider's cleanup hands the driver pod to process_pod_deletion,
    which deletes the SparkApplication through the launcher. Returns (the application, the
    logged lines)."""
    from airflow.providers.cncf.kubernetes.operators.custom_object_launcher import (
        CustomObjectLauncher,
    )

    context = airflow_context(dag, operator.task_id)
    app = operator.spark_application(context)
    api.add(app)
    core = mock.Mock()
    operator.__dict__["client"] = core
    operator.__dict__["custom_obj_api"] = api
    operator.launcher = CustomObjectLauncher(
        name=app["metadata"]["name"], namespace=operator.namespace, kube_client=core,
        custom_obj_api=api, template_body={"spark": app})
    lines: list[str] = []
    log = mock.Mock()
    log.info.side_effect = log.warning.side_effect = lambda msg, *args: lines.append(msg % args)
    with mock.patch.object(type(operator), "log", new_callable=mock.PropertyMock,
                           return_value=log):
        operator.process_pod_deletion(driver_pod(app, pod_labels), reraise=False)
    return app, lines


def test_the_task_log_names_the_history_page_read_before_the_deletion(kubernetes_dag):
    from fraudops.core.platform import platform

    operator = kubernetes_dag.get_task("train")
    api = FakeStatus("spark-0123456789abcdef")
    app, lines = finish(operator, kubernetes_dag, api)
    name = app["metadata"]["name"]
    assert api.status_reads == [name] and api.deleted == [name]
    port = platform()["spark_history"]["port"]
    url = f"http://localhost:{port}/history/spark-0123456789abcdef/"
    (line,) = [line for line in lines if "Spark History Server" in line]
    assert url in line and "make port-forward-spark-history" in line
    # ... and before the provider's own "Deleting spark job" line.
    assert lines.index(line) < next(i for i, other in enumerate(lines) if other.startswith("Deleting"))


def test_without_a_status_id_the_driver_label_names_the_page(kubernetes_dag):
    operator = kubernetes_dag.get_task("clean")
    api = FakeStatus(None)
    _, lines = finish(operator, kubernetes_dag, api,
                      pod_labels={"spark-app-selector": "spark-fedcba9876543210"})  # pragma: allowlist secret
    assert any("/history/spark-fedcba9876543210/" in line for line in lines)  # pragma: allowlist secret


def test_an_application_that_never_started_has_no_page_and_is_still_deleted(kubernetes_dag):
    operator = kubernetes_dag.get_task("score")
    api = FakeStatus(None)
    app, lines = finish(operator, kubernetes_dag, api)
    assert api.deleted == [app["metadata"]["name"]]
    assert not any("/history/" in line for line in lines)
    assert any("no Spark History Server page" in line for line in lines)


def test_a_failing_status_read_never_fails_the_cleanup(kubernetes_dag):
    operator = kubernetes_dag.get_task("features")
    api = FakeStatus("spark-1")
    api.get_namespaced_custom_object_status = mock.Mock(
        side_effect=ApiException(status=500, reason="Internal Server Error"))
    app, lines = finish(operator, kubernetes_dag, api)
    assert api.deleted == [app["metadata"]["name"]]
    assert any("No status of SparkApplication" in line for line in lines)
