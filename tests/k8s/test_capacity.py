"""Capacity that adds up: every step's Spark pods (tests.k8s.capacity, from the SparkApplication
each step really gets) through each overlay's LimitRange and ResourceQuota and onto the Spark node
group's nodes; the platform's pods (chart values, the MLflow chart rendered) onto the system node
group's. docs/kubernetes.md ("Capacity") says why each rule is what it is."""

from __future__ import annotations

import pytest
import yaml

from fraudops.core.platform import platform
from fraudops.core.steps import STEPS, RunContext
from fraudops.orchestration.settings import load_settings
from fraudops.orchestration.spark_application import build_spark_application
from tests.k8s import capacity
from tests.k8s.capacity import Resources
from tests.k8s.manifests import (
    MLFLOW_CHART,
    OVERLAYS,
    REPO,
    deep_merge,
    kustomize,
    objects,
    pod_specs,
    render_chart,
)
from tests.terraform import hcl

NAMES = platform()
JOBS = NAMES["namespaces"]["jobs"]
# The overlay whose quota must hold every step at full scale; the other ones (dev: a laptop)
# must hold each step at its smallest, the executors above it waiting for room.
FULL_SCALE_OVERLAYS = {"yandex"}

# Stated, not measured: what runs on the cluster besides this platform. Every node runs the
# managed DaemonSets (Calico, kube-proxy, ip-masq-agent, the CSI node plugin, the node problem
# detector); the system nodes also run CoreDNS (two replicas), metrics-server and Calico's
# Typha. Check a real cluster with `kubectl describe node` (Allocated resources).
KUBE_SYSTEM_PER_NODE = Resources(cpu=400, memory=512)
KUBE_SYSTEM_CLUSTER = Resources(cpu=500, memory=768)
# What `make deploy OVERLAY=dev` needs of its one node (docs/kubernetes.md, Capacity).
DEV_NODE = Resources(cpu=8000, memory=24 * 1024)
# The KubernetesExecutor starts a pod per running task; the DAG runs one run at a time and one
# task of it at a time, and a finished task's pod may still be there when the next one starts.
TASK_PODS = 2


def step_applications() -> dict[str, dict]:
    """step name -> the SparkApplication the DAG's operator submits for it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FRAUDOPS_BACKEND", "kubernetes")
    mp.setenv("FRAUDOPS_SPARK_IMAGE", "cr.yandex/crp123/fraudops-spark:abc1234")
    mp.setenv("MLFLOW_TRACKING_URI", "http://mlflow.fraudops.svc.cluster.local:5000")
    try:
        settings = load_settings()
        ctx = RunContext(ds="2018-04-02", run_id="scheduled__2018-04-02", lake_root=settings.lake_root)
        return {name: build_spark_application(step, ctx, settings) for name, step in STEPS.items()}
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def applications():
    return step_applications()


def jobs_object(overlay: str, kind: str) -> dict:
    (obj,) = [o for o in kustomize(REPO / "k8s" / "overlays" / overlay)
              if o["kind"] == kind and o["metadata"].get("namespace") == JOBS]
    return obj


# Spark's rules --------------------------------------------------------------------------------

def app(kind="Python", driver="4g", executor="6g", conf=None, **spec):
    return {"spec": {"type": kind, "driver": {"cores": 1, "memory": driver},
                     "executor": {"cores": 2, "memory": executor, "instances": 3},
                     "sparkConf": conf or {}, **spec}}


def test_python_applications_get_forty_percent_overhead():
    pods = capacity.spark_pods(app())
    assert pods.driver == Resources(1000, 4096 + 1638, None, 4096 + 1638)
    assert pods.executor == Resources(2000, 6144 + 2457, None, 6144 + 2457)
    assert (pods.min_executors, pods.max_executors) == (3, 3)


def test_jvm_applications_get_ten_percent_and_at_least_384_mib():
    pods = capacity.spark_pods(app(kind="Scala", driver="512m", executor="8g"))
    assert pods.driver.memory == 512 + 384
    assert pods.executor.memory == 8192 + 819


def test_settings_override_the_defaults():
    pods = capacity.spark_pods(app(conf={
        "spark.kubernetes.memoryOverheadFactor": "0.2", "spark.executor.pyspark.memory": "1g",
        "spark.kubernetes.executor.limit.cores": "3"}, ))
    assert pods.driver.memory == 4096 + 819
    assert pods.executor == Resources(2000, 6144 + 1228 + 1024, 3000, 6144 + 1228 + 1024)
    explicit = capacity.spark_pods(app(driver="2g") | {"spec": {
        **app()["spec"], "driver": {"cores": 2, "memory": "2g", "memoryOverhead": "1g",
                                    "coreRequest": "1500m"}}})
    assert explicit.driver == Resources(1500, 3072, None, 3072)


def test_limit_range_defaults_follow_the_api_server():
    item = {"type": "Container", "max": {"cpu": "8"}, "defaultRequest": {"memory": "512Mi"}}
    assert capacity.limit_range_defaults(item) == ({"cpu": "8"}, {"cpu": "8", "memory": "512Mi"})


# Every step, every overlay --------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_limit_range_admits_spark_pods_unchanged(applications, overlay):
    """Requests only: the LimitRange must not give Spark's containers a CPU limit (with a max and
    no default, the API server would default the limit to the max)."""
    limits = jobs_object(overlay, "LimitRange")
    for name, application in applications.items():
        pods = capacity.spark_pods(application)
        for role, pod in (("driver", pods.driver), ("executor", pods.executor)):
            admitted, problems = capacity.admit(pod, limits)
            assert problems == [], f"{overlay}: {name} {role}: {problems}"
            assert admitted == pod, f"{overlay}: {name} {role}: {pod} admitted as {admitted}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_step_fits_the_jobs_quota(applications, overlay):
    quota = jobs_object(overlay, "ResourceQuota")
    for name, application in applications.items():
        pods = capacity.spark_pods(application)
        needed = pods.largest if overlay in FULL_SCALE_OVERLAYS else pods.smallest
        problems = capacity.quota_violations(needed, quota)
        assert problems == [], (f"{overlay}: {name} with {len(needed) - 1} executor(s) "
                                f"({capacity.total(needed)}): {problems}")


def test_the_limit_range_default_request_fits_inside_the_default_limit():
    (item,) = jobs_object("yandex", "LimitRange")["spec"]["limits"]
    default, request = capacity.limit_range_defaults(item)
    assert "cpu" not in default, "a default CPU limit would throttle every container"
    assert capacity.memory_mib(request["memory"]) <= capacity.memory_mib(default["memory"])


# Nodes ----------------------------------------------------------------------------------------

def node_room(group: str) -> tuple[Resources, int]:
    node = hcl.object_defaults(group)
    allocatable = capacity.yandex_allocatable(node["cores"], node["memory"])
    room = Resources(allocatable.cpu - KUBE_SYSTEM_PER_NODE.cpu,
                     allocatable.memory - KUBE_SYSTEM_PER_NODE.memory)
    count = int(node.get("size", node.get("max_size")))
    return room, count


def test_yandex_allocatable_follows_the_documented_bands():
    # 2 vCPUs: 6% + 1% kept; 8 GB: 25% of 4 + 20% of 4 kept, plus 100 MiB for eviction.
    assert capacity.yandex_allocatable(2, 8) == Resources(1930, int(8192 - 1024 - 819.2 - 100))
    assert capacity.yandex_allocatable(8, 32).cpu == 8000 - 90


def test_every_step_fits_the_spark_node_group(applications):
    room, nodes = node_room("spark_node_group")
    for name, application in applications.items():
        pods = capacity.spark_pods(application)
        for pod in (pods.driver, pods.executor):
            assert pod.fits_in(room), f"{name}: a {pod} pod fits no Spark node ({room} free)"
        assert capacity.pack(pods.largest, room, nodes) is not None, (
            f"{name}: driver and {pods.max_executors} executors do not fit {nodes} Spark nodes "
            f"of {room} free each")


def chart_values(*names: str) -> dict:
    merged: dict = {}
    for name in names:
        merged = deep_merge(merged, yaml.safe_load((REPO / "charts" / name).read_text()) or {})
    return merged


def platform_pods(overlay: str = "yandex") -> dict[str, Resources]:
    """Every long-running pod of the platform on the system nodes, by name, with the values
    `make deploy OVERLAY=<overlay>` installs (dev adds its own values files)."""
    dev = overlay == "dev"
    pods: dict[str, Resources] = {}
    airflow = chart_values("airflow-values.yaml", *(["airflow-values.dev.yaml"] if dev else []))
    for component in ("scheduler", "apiServer", "dagProcessor", "triggerer"):
        values = airflow[component]
        for replica in range(int(values.get("replicas", 1))):
            pods[f"airflow-{component}-{replica}"] = Resources.of(values["resources"])
    for task in range(TASK_PODS):
        pods[f"airflow-task-{task}"] = Resources.of(airflow["workers"]["resources"])
    operator = chart_values("spark-operator-values.yaml")
    for component in ("controller", "webhook"):
        for replica in range(int(operator[component].get("replicas", 1))):
            pods[f"spark-operator-{component}-{replica}"] = Resources.of(
                operator[component]["resources"])
    mlflow_values = chart_values("mlflow-values.dev.yaml") if dev else {}
    rendered = objects(render_chart(MLFLOW_CHART, mlflow_values,
                                    release=NAMES["mlflow"]["service"],
                                    namespace=NAMES["namespaces"]["platform"]))
    manifests = kustomize(REPO / "k8s" / "overlays" / overlay)
    for obj in rendered + manifests:
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        [(name, spec)] = pod_specs([obj])
        for replica in range(int(obj["spec"].get("replicas", 1) if obj["kind"] != "Job" else 1)):
            pods[f"{name}-{replica}"] = capacity.pod_requests(spec)
    pods["kube-system"] = KUBE_SYSTEM_CLUSTER
    return pods


def test_the_system_node_group_holds_the_platform():
    room, nodes = node_room("system_node_group")
    pods = platform_pods()
    assert any(name.startswith("Deployment/mlflow") for name in pods)
    needed = capacity.total(pods.values())
    placed = capacity.pack(list(pods.values()), room, nodes)
    assert placed is not None, (
        f"the platform needs {needed} on the system nodes; {nodes} node(s) have {room} each "
        "after the per-node system pods")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_platform_container_states_requests(overlay):
    """A pod without requests would not be counted here, and would be the first evicted."""
    assert all(pod.cpu > 0 and pod.memory > 0 for pod in platform_pods(overlay).values())


def test_one_dev_node_holds_the_platform_and_each_step(applications):
    """`make deploy OVERLAY=dev` (kind, minikube, make e2e) runs everything on one node: the
    platform with the dev values and, one at a time, each step's driver and first executor."""
    room = Resources(DEV_NODE.cpu - KUBE_SYSTEM_PER_NODE.cpu,
                     DEV_NODE.memory - KUBE_SYSTEM_PER_NODE.memory)
    platform_part = list(platform_pods("dev").values())
    for name, application in applications.items():
        pods = platform_part + capacity.spark_pods(application).smallest
        assert capacity.pack(pods, room, 1) is not None, (
            f"{name}: the dev platform and its driver and first executor need "
            f"{capacity.total(pods)}; a {DEV_NODE} node has {room} after kube-system")
