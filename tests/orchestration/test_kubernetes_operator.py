"""The Kubernetes launcher, exercised through the provider up to the API call (a fake client)."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import jsonschema
import pytest

from fraudops.core.steps import STEPS, RunContext, safe_id
from fraudops.orchestration.spark_application import build_spark_application

RUN_ID = "scheduled__2018-04-02T00:00:00+00:00"


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
        STEPS[name], RunContext("2018-04-02", RUN_ID, settings.lake_root), settings
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
    assert safe_id(RUN_ID) in operator.template_spec["spec"]["arguments"]


def test_operator_is_configured_to_clean_up_and_stream_logs(kubernetes_dag):
    for name in STEPS:
        operator = kubernetes_dag.get_task(name)
        assert operator.delete_on_termination is True
        assert operator.get_logs is True
        assert operator.random_name_suffix is False
        assert operator.namespace == operator.settings.jobs_namespace
        assert operator.kubernetes_conn_id == "kubernetes_default"
        assert operator.success_run_history_limit == 1
