"""Every step's SparkApplication: valid against the real CRD, and carrying what the cluster needs."""

from __future__ import annotations

import copy
import dataclasses

import jsonschema
import pytest
import yaml

from fraudops.core import config
from fraudops.core.platform import platform
from fraudops.core.steps import STEPS, RunContext, unique_id
from fraudops.orchestration import spark_application as sa
from fraudops.orchestration.settings import load_settings

RUN_ID = "scheduled__2018-04-02T00:00:00+00:00"


@pytest.fixture
def settings(monkeypatch):
    monkeypatch.setenv("FRAUDOPS_BACKEND", "kubernetes")
    monkeypatch.setenv("FRAUDOPS_SPARK_IMAGE", "cr.yandex/crp123/fraudops-spark:abc1234")
    return load_settings()


@pytest.fixture
def ctx(settings):
    return RunContext(ds="2018-04-02", run_id=RUN_ID, lake_root=settings.lake_root)


def closed(schema):
    """The CRD schema with unknown fields forbidden: the API server would silently prune them,
    so a misspelt field would pass a plain validation and then do nothing in the cluster."""
    schema = copy.deepcopy(schema)

    def close(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def validate(app, schema):
    errors = sorted(
        jsonschema.Draft7Validator(closed(schema)).iter_errors(app), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("name", sorted(STEPS))
def test_each_step_application_is_valid_against_the_crd(
    name, settings, ctx, sparkapplication_schema
):
    validate(sa.build_spark_application(STEPS[name], ctx, settings), sparkapplication_schema)


def test_the_closed_schema_catches_a_misspelt_field(settings, ctx, sparkapplication_schema):
    app = sa.build_spark_application(STEPS["clean"], ctx, settings)
    app["spec"]["dynamicAllocation"]["shuffleTracking"] = True
    with pytest.raises(AssertionError, match="shuffleTracking"):
        validate(app, sparkapplication_schema)


@pytest.mark.parametrize("name", sorted(STEPS))
def test_application_runs_the_step_module_with_its_arguments(name, settings, ctx):
    step = STEPS[name]
    spec = sa.build_spark_application(step, ctx, settings)["spec"]
    assert spec["type"] == "Python" and spec["pythonVersion"] == "3" and spec["mode"] == "cluster"
    assert spec["sparkVersion"] == "4.0.1"
    assert spec["mainApplicationFile"] == "local:///opt/fraudops/spark_jobs/entry.py"
    assert spec["arguments"] == [step.module, *step.args(ctx)]
    assert spec["image"] == "cr.yandex/crp123/fraudops-spark:abc1234"
    assert spec["imagePullPolicy"] == "IfNotPresent"
    resources = step.resources
    assert spec["driver"]["cores"] == resources.driver_cores
    assert spec["driver"]["memory"] == resources.driver_memory
    assert spec["executor"]["cores"] == resources.executor_cores
    assert spec["executor"]["memory"] == resources.executor_memory
    assert spec["executor"]["instances"] == resources.min_executors
    assert spec["dynamicAllocation"] == {
        "enabled": resources.dynamic_allocation,
        "initialExecutors": resources.min_executors,
        "minExecutors": resources.min_executors,
        "maxExecutors": resources.max_executors,
        "shuffleTrackingEnabled": True,
    }


def test_application_is_placed_on_the_spark_pool_with_platform_names(settings, ctx):
    names = platform()
    pool = names["spark_node_pool"]
    app = sa.build_spark_application(STEPS["train"], ctx, settings)
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert app["kind"] == "SparkApplication"
    assert app["metadata"]["namespace"] == names["namespaces"]["jobs"]
    for role in ("driver", "executor"):
        pod = app["spec"][role]
        # Executors run as the token-less spark_executor (k8s/base/spark-driver-rbac.yaml).
        assert pod["serviceAccount"] == names["service_accounts"][f"spark_{role}"]
        assert pod["nodeSelector"] == {pool["label_key"]: pool["label_value"]}
        assert pod["tolerations"] == [
            {
                "key": pool["taint_key"],
                "operator": "Equal",
                "value": pool["taint_value"],
                "effect": "NoSchedule",
            }
        ]
        assert pod["labels"]["fraudops.io/step"] == "train"
        assert pod["labels"]["fraudops.io/run-id"] == unique_id(RUN_ID)


def test_secrets_are_referenced_never_inlined(monkeypatch, settings, ctx):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-LEAK-CHECK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-leak-check")
    app = sa.build_spark_application(STEPS["promote"], ctx, load_settings())
    text = yaml.safe_dump(app)
    assert "LEAK-CHECK" not in text and "leak-check" not in text
    s3_secret = platform()["secrets"]["s3_spark"]
    for role in ("driver", "executor"):
        env = {item["name"]: item for item in app["spec"][role]["env"]}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert "value" not in env[key]
            assert env[key]["valueFrom"] == {"secretKeyRef": {"name": s3_secret, "key": key}}
        assert env["FRAUDOPS_LAKE_ROOT"]["value"] == settings.lake_root
        assert env["MLFLOW_TRACKING_URI"]["value"] == settings.tracking_uri
        assert env["FRAUDOPS_S3_ENDPOINT"]["value"] == platform()["s3"]["endpoint"]
        assert app["spec"][role]["envFrom"] == [
            {"secretRef": {"name": platform()["secrets"]["mlflow_auth"], "optional": True}}
        ]


def test_s3a_and_spark_settings(settings, ctx):
    conf = sa.build_spark_application(STEPS["score"], ctx, settings)["spec"]["sparkConf"]
    assert conf["spark.hadoop.fs.s3a.endpoint"] == platform()["s3"]["endpoint"]
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"] == (
        "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
    )
    assert conf["spark.sql.sources.partitionOverwriteMode"] == "dynamic"
    assert all(isinstance(value, str) for value in conf.values())


def test_an_s3a_lake_gets_the_s3a_committers_and_a_local_one_does_not(settings, ctx):
    assert ctx.lake_root.startswith("s3a://")
    conf = sa.build_spark_application(STEPS["clean"], ctx, settings)["spec"]["sparkConf"]
    assert conf["spark.sql.sources.commitProtocolClass"] == (
        "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol")
    assert conf["spark.sql.parquet.output.committer.class"] == (
        "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter")
    assert conf["spark.hadoop.fs.s3a.committer.name"] == "magic"
    local = dataclasses.replace(ctx, lake_root="/data/lake")
    conf = sa.build_spark_application(STEPS["clean"], local, settings)["spec"]["sparkConf"]
    assert not any("committer" in key or "commitProtocol" in key for key in conf)


def test_driver_and_executors_get_the_jobs_jvm_options(settings, ctx):
    """The driver JVM starts before get_spark() runs, so only the manifest can set its options."""
    spec = sa.build_spark_application(STEPS["train"], ctx, settings)["spec"]
    assert spec["driver"]["javaOptions"] == config.SPARK_JVM_OPTIONS
    assert spec["executor"]["javaOptions"] == config.SPARK_JVM_OPTIONS


def test_cloud_defaults_point_at_the_platform(settings):
    names = platform()
    assert settings.lake_root == f"s3a://{names['buckets']['lake']}/lake"
    assert settings.tracking_uri == (
        f"http://{names['mlflow']['service']}.{names['namespaces']['platform']}"
        f".svc.cluster.local:{names['mlflow']['port']}"
    )


@pytest.mark.parametrize(
    "run_id",
    [
        RUN_ID,
        "manual__2026-11-22T18:46:09.137109+00:00",
        "asset_triggered__2026-11-22T18:46:09.137109+00:00_" + "x" * 80,
    ],
)
@pytest.mark.parametrize("name", sorted(STEPS))
def test_names_are_dns_1035_labels_unique_per_step_and_run(name, run_id):
    app_name = sa.application_name("fraud_retraining", name, unique_id(run_id))
    assert len(app_name) <= 63
    assert sa._DNS_1035_LABEL.match(app_name)
    assert app_name.startswith(f"fraud-retraining-{name}-")
    other_run = sa.application_name(
        "fraud_retraining", name, unique_id(run_id.replace("2018", "2019").replace("2026", "2027"))
    )
    assert other_run != app_name


def test_short_names_are_kept_whole():
    assert sa.application_name("fraud_retraining", "clean", unique_id("r-2018-04-02")) == (
        "fraud-retraining-clean-r-2018-04-02"
    )


def test_a_scheduled_runs_name_is_cut_and_hashed():
    """unique_id keeps a hash of the Airflow run id; the name, too long then, is cut and ends
    with a hash of the whole name."""
    assert unique_id(RUN_ID) == "scheduled-2018-04-02t00-00-00-00-00-9dbc277d"
    assert sa.application_name("fraud_retraining", "clean", unique_id(RUN_ID)) == (
        "fraud-retraining-clean-scheduled-2018-04-02t00-00-00-0-85c52331"
    )


def test_template_and_values_must_match():
    template = {"a": "${x}", "b": ["${y}-suffix"], "${k}": 1}
    assert sa.fill_template(template, {"x": [1, 2], "y": 3, "k": "key"}) == {
        "a": [1, 2],
        "b": ["3-suffix"],
        "key": 1,
    }
    with pytest.raises(KeyError, match="no value"):
        sa.fill_template(template, {"x": 1, "y": 2})
    with pytest.raises(KeyError, match="does not use"):
        sa.fill_template(template, {"x": 1, "y": 2, "k": "k", "extra": 0})


def test_filled_yaml_aliases_are_independent_copies(settings, ctx):
    spec = sa.build_spark_application(STEPS["clean"], ctx, settings)["spec"]
    assert spec["driver"]["env"] == spec["executor"]["env"]
    assert spec["driver"]["env"] is not spec["executor"]["env"]


def test_a_missing_template_is_a_clear_error(monkeypatch, ctx, tmp_path):
    monkeypatch.setenv("FRAUDOPS_BACKEND", "kubernetes")
    monkeypatch.setenv("FRAUDOPS_SPARK_TEMPLATE", str(tmp_path / "absent.yaml"))
    with pytest.raises(FileNotFoundError, match="FRAUDOPS_SPARK_TEMPLATE"):
        sa.build_spark_application(STEPS["clean"], ctx, load_settings())
