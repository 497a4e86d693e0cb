"""Build a step's SparkApplication (sparkoperator.k8s.io/v1beta2) from the one template.

The template, k8s/spark/sparkapplication.template.yaml, is a complete manifest with ``${name}``
placeholders; this module fills them from the step (module, arguments, resources), the run
(name, labels) and the platform names. Nothing secret is ever filled in: the pods read the S3
keys from a Kubernetes Secret by reference.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from string import Template
from typing import Any

import yaml

from fraudops.core import config
from fraudops.core.platform import platform
from fraudops.core.steps import RunContext, Step, safe_id
from fraudops.orchestration.settings import Settings

MAX_NAME_LENGTH = 63
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_WHOLE_PLACEHOLDER = re.compile(r"^\$\{(\w+)\}$")


def application_name(dag_id: str, step_name: str, safe_run_id: str) -> str:
    """``<dag id>-<step>-<run id>`` as a DNS-1035 label; a long one is cut and given a hash."""
    name = f"{safe_id(dag_id)}-{safe_id(step_name)}-{safe_run_id}".strip("-")
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME_LENGTH - len(digest) - 1].rstrip('-')}-{digest}"
    if not _DNS_1035_LABEL.match(name):
        raise ValueError(f"{name!r} is not a DNS-1035 label (a SparkApplication name must be)")
    return name


def event_log_dir() -> str:
    """Where every step's Spark event log goes: a prefix of its own in the lake bucket, read by
    the Spark History Server (platform.yaml ``spark_history``)."""
    names = platform()
    return f"s3a://{names['buckets']['lake']}/{names['spark_history']['event_log_prefix']}/"


def history_url(spark_app_id: str) -> str:
    """The application's page on the Spark History Server through `make
    port-forward-spark-history`."""
    return f"http://localhost:{platform()['spark_history']['port']}/history/{spark_app_id}/"


def template_values(step: Step, ctx: RunContext, settings: Settings,
                    attempt: int | None = None) -> dict[str, Any]:
    names = platform()
    pool = names["spark_node_pool"]
    resources = step.resources
    # One name per try: a leftover of an earlier try never blocks the next one's create.
    run_part = ctx.safe_run_id if attempt is None else f"{ctx.safe_run_id}-try{attempt}"
    return {
        "project": names["project"],
        "name": application_name(names["airflow"]["dag_id"], step.name, run_part),
        "namespace": settings.jobs_namespace,
        "step": step.name,
        "run_id": ctx.safe_run_id[:MAX_NAME_LENGTH].strip("-"),
        "image": settings.spark_image,
        "arguments": [step.module, *step.args(ctx)],
        "dynamic_allocation": resources.dynamic_allocation,
        "min_executors": resources.min_executors,
        "max_executors": resources.max_executors,
        "driver_cores": resources.driver_cores,
        "driver_memory": resources.driver_memory,
        "executor_cores": resources.executor_cores,
        "executor_memory": resources.executor_memory,
        "jvm_options": config.SPARK_JVM_OPTIONS,
        "service_account": settings.spark_service_account,
        "executor_service_account": names["service_accounts"]["spark_executor"],
        "lake_root": settings.lake_root,
        "tracking_uri": settings.tracking_uri or "",
        "s3_endpoint": settings.s3_endpoint,
        "s3_region": names["s3"]["region"],
        "event_log_dir": event_log_dir(),
        "s3_secret": names["secrets"]["s3_spark"],
        "mlflow_auth_secret": names["secrets"]["mlflow_auth"],
        "pool_label_key": pool["label_key"],
        "pool_label_value": pool["label_value"],
        "pool_taint_key": pool["taint_key"],
        "pool_taint_value": pool["taint_value"],
    }


def build_spark_application(step: Step, ctx: RunContext, settings: Settings,
                            attempt: int | None = None) -> dict[str, Any]:
    """The SparkApplication that runs ``step`` for the run ``ctx``, as a plain dict; with
    ``attempt`` (the task's try number) its name is that try's own."""
    if not settings.tracking_uri:
        raise ValueError("a SparkApplication needs an MLflow tracking URI (MLFLOW_TRACKING_URI)")
    application = fill_template(
        load_template(settings.spark_template), template_values(step, ctx, settings, attempt)
    )
    # The driver starts before the job's code: settings read at start-up ride in the manifest.
    application["spec"]["sparkConf"].update(config.committer_settings(ctx.lake_root))
    return application


def load_template(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(
            f"SparkApplication template not found at {path}: ship k8s/spark/ with the Airflow "
            "image or point FRAUDOPS_SPARK_TEMPLATE at it"
        )
    return yaml.safe_load(path.read_text())


def placeholders(template: Any) -> set[str]:
    """Every ``${name}`` the template uses, in keys and values."""
    if isinstance(template, dict):
        return set().union(*(placeholders(k) | placeholders(v) for k, v in template.items()))
    if isinstance(template, list):
        return set().union(*(placeholders(item) for item in template))
    if isinstance(template, str):
        return set(Template(template).get_identifiers())
    return set()


def fill_template(template: Any, values: dict[str, Any]) -> Any:
    """A filled copy of ``template``; unknown placeholders and unused values are errors."""
    expected = placeholders(template)
    if missing := expected - values.keys():
        raise KeyError(f"no value for template placeholders: {sorted(missing)}")
    if unused := values.keys() - expected:
        raise KeyError(f"values the template does not use: {sorted(unused)}")
    return _fill(template, values)


def _fill(node: Any, values: dict[str, Any]) -> Any:
    # Always builds new containers: YAML aliases in the template must not become shared objects.
    if isinstance(node, dict):
        return {_fill(key, values): _fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, str):
        if whole := _WHOLE_PLACEHOLDER.match(node):
            return _copy(values[whole.group(1)])
        return Template(node).substitute({k: str(v) for k, v in values.items()})
    return node


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
