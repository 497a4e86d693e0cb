"""What the platform's pods really ask the scheduler for, computed with the rules of the software
that creates them, and whether that fits a namespace's quota and a node group's nodes.

- Spark on Kubernetes (``spark_pods``): a pod's memory request and limit are the JVM heap plus an
  overhead of ``max(factor * heap, minimum)``; the factor is 0.1 for JVM applications and 0.4 for
  Python and R ones unless set, the minimum 384 MiB; executors add ``spark.executor.pyspark.memory``
  and off-heap memory. The CPU request is the cores (or ``*.request.cores``), with no CPU limit
  unless ``*.limit.cores`` is set. spark-operator maps its fields onto these settings and adds
  nothing of its own.
- Kubernetes: a LimitRange's defaults (``limit_range_defaults``, ``admit``), a ResourceQuota's
  sums (``quota_violations``), a pod's effective request (the larger of its containers' sum and
  its largest init container), and a first-fit-decreasing packing onto nodes (``pack``: a
  placement exists; the scheduler, placing pods as they come, may need some slack besides).
- Yandex Managed Kubernetes: what a node keeps for itself (``yandex_allocatable``).

Quantities are millicores and MiB throughout. docs/kubernetes.md says how the tests use this.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Spark 4.0, resource-managers/kubernetes (Constants.NON_JVM_MEMORY_OVERHEAD_FACTOR) and core
# (spark.{driver,executor}.memoryOverheadFactor, spark.{driver,executor}.minMemoryOverhead).
JVM_OVERHEAD_FACTOR = 0.1
NON_JVM_OVERHEAD_FACTOR = 0.4
MIN_OVERHEAD_MIB = 384
NON_JVM_TYPES = {"Python", "R"}
# Spark's default executor count without dynamic allocation (spark.executor.instances).
DEFAULT_EXECUTOR_INSTANCES = 2

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_SPARK_UNITS = {"k": 2**-10, "m": 1, "g": 2**10, "t": 2**20, "p": 2**30}


# Quantities -----------------------------------------------------------------------------------

def cpu_millis(quantity: str | int | float) -> int:
    """A Kubernetes CPU quantity ("250m", "2", 1.5) in millicores."""
    text = str(quantity)
    if text.endswith("m"):
        return math.ceil(float(text[:-1]))
    return math.ceil(float(text) * 1000)


def memory_mib(quantity: str | int | float) -> int:
    """A Kubernetes memory quantity ("512Mi", "16Gi", "1G", bytes) in MiB, rounded up."""
    match = _QUANTITY.match(str(quantity).strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}")
    number, unit = float(match.group(1)), match.group(2)
    if unit in _BINARY:
        size = number * _BINARY[unit]
    elif unit in _DECIMAL:
        size = number * _DECIMAL[unit]
    else:
        raise ValueError(f"unknown unit in {quantity!r}")
    return math.ceil(size / 2**20)


def spark_mib(size: str | int) -> int:
    """A Spark memory setting ("4g", "512m", "2048") in MiB, as JavaUtils.byteStringAsMb reads
    it: binary units, no unit meaning MiB."""
    text = str(size).strip().lower().rstrip("b")
    match = re.fullmatch(r"([0-9]+)([kmgtp]?)", text)
    if not match:
        raise ValueError(f"not a Spark memory size: {size!r}")
    return int(int(match.group(1)) * _SPARK_UNITS[match.group(2) or "m"])


# Requests -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resources:
    """A container's or pod's requests and limits; None means no limit."""

    cpu: int = 0  # millicores requested
    memory: int = 0  # MiB requested
    cpu_limit: int | None = None
    memory_limit: int | None = None

    @classmethod
    def of(cls, spec: Mapping[str, Any] | None) -> Resources:
        """From a container's ``resources`` block (Kubernetes quantities)."""
        spec = spec or {}
        requests, limits = spec.get("requests") or {}, spec.get("limits") or {}
        return cls(cpu=cpu_millis(requests["cpu"]) if "cpu" in requests else 0,
                   memory=memory_mib(requests["memory"]) if "memory" in requests else 0,
                   cpu_limit=cpu_millis(limits["cpu"]) if "cpu" in limits else None,
                   memory_limit=memory_mib(limits["memory"]) if "memory" in limits else None)

    def __add__(self, other: Resources) -> Resources:
        def both(a, b):
            return None if a is None or b is None else a + b
        return Resources(self.cpu + other.cpu, self.memory + other.memory,
                         both(self.cpu_limit, other.cpu_limit),
                         both(self.memory_limit, other.memory_limit))

    def times(self, count: int) -> Resources:
        return total([self] * count)

    def fits_in(self, room: Resources) -> bool:
        return self.cpu <= room.cpu and self.memory <= room.memory

    def __str__(self) -> str:
        limits = "".join(f", {name} limit {value}" for name, value in
                         (("CPU", self.cpu_limit), ("memory", self.memory_limit)) if value)
        return f"{self.cpu}m CPU, {self.memory} MiB{limits}"


def total(items: Iterable[Resources]) -> Resources:
    result = Resources(cpu_limit=0, memory_limit=0)
    for item in items:
        result = result + item
    return result


def pod_requests(pod_spec: Mapping[str, Any]) -> Resources:
    """A pod's effective request: its containers' sum, or its largest init container's when
    larger (init containers run one at a time, before the others)."""
    containers = total(Resources.of(c.get("resources")) for c in pod_spec.get("containers", []))
    for init in pod_spec.get("initContainers", []) or []:
        one = Resources.of(init.get("resources"))
        containers = Resources(max(containers.cpu, one.cpu), max(containers.memory, one.memory),
                               containers.cpu_limit, containers.memory_limit)
    return containers


# Spark ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SparkPods:
    """One SparkApplication's pods: a driver and ``min_executors`` to ``max_executors``
    executors (both ends equal without dynamic allocation)."""

    driver: Resources
    executor: Resources
    min_executors: int
    max_executors: int

    def pods(self, executors: int) -> list[Resources]:
        return [self.driver, *[self.executor] * executors]

    @property
    def smallest(self) -> list[Resources]:
        """What must be admitted together for the application to make progress."""
        return self.pods(max(self.min_executors, 1))

    @property
    def largest(self) -> list[Resources]:
        return self.pods(self.max_executors)


def spark_conf(application: Mapping[str, Any]) -> dict[str, str]:
    """The Spark settings spark-operator submits for a SparkApplication (v1beta2): its
    ``sparkConf`` plus what it maps from the driver, executor and top-level fields."""
    spec = application["spec"]
    conf = {key: str(value) for key, value in (spec.get("sparkConf") or {}).items()}
    if "memoryOverheadFactor" in spec:
        conf["spark.kubernetes.memoryOverheadFactor"] = str(spec["memoryOverheadFactor"])
    for role in ("driver", "executor"):
        part = spec.get(role) or {}
        mapped = {"cores": f"spark.{role}.cores", "memory": f"spark.{role}.memory",
                  "memoryOverhead": f"spark.{role}.memoryOverhead",
                  "coreRequest": f"spark.kubernetes.{role}.request.cores",
                  "coreLimit": f"spark.kubernetes.{role}.limit.cores"}
        for field, key in mapped.items():
            if field in part:
                conf[key] = str(part[field])
    if "instances" in (spec.get("executor") or {}):
        conf["spark.executor.instances"] = str(spec["executor"]["instances"])
    return conf


def _overhead(conf: Mapping[str, str], role: str, heap: int, factor: float) -> int:
    if f"spark.{role}.memoryOverhead" in conf:
        return spark_mib(conf[f"spark.{role}.memoryOverhead"])
    minimum = spark_mib(conf.get(f"spark.{role}.minMemoryOverhead", f"{MIN_OVERHEAD_MIB}m"))
    return max(int(factor * heap), minimum)


def _cores(conf: Mapping[str, str], role: str) -> tuple[int, int | None]:
    request = conf.get(f"spark.kubernetes.{role}.request.cores", conf.get(f"spark.{role}.cores", "1"))
    limit = conf.get(f"spark.kubernetes.{role}.limit.cores")
    return cpu_millis(request), (cpu_millis(limit) if limit else None)


def spark_pods(application: Mapping[str, Any]) -> SparkPods:
    """The driver's and executors' requests for a SparkApplication manifest, as Spark's
    BasicDriverFeatureStep and BasicExecutorFeatureStep set them on the pods."""
    spec = application["spec"]
    conf = spark_conf(application)
    non_jvm = spec.get("type") in NON_JVM_TYPES
    # The driver's factor; Spark hands it to the executors as spark.kubernetes.memoryOverheadFactor.
    if "spark.driver.memoryOverheadFactor" in conf:
        factor = float(conf["spark.driver.memoryOverheadFactor"])
    elif "spark.kubernetes.memoryOverheadFactor" in conf:
        factor = float(conf["spark.kubernetes.memoryOverheadFactor"])
    else:
        factor = NON_JVM_OVERHEAD_FACTOR if non_jvm else JVM_OVERHEAD_FACTOR
    executor_factor = float(conf.get("spark.executor.memoryOverheadFactor", factor))

    heap = spark_mib(conf.get("spark.driver.memory", "1g"))
    memory = heap + _overhead(conf, "driver", heap, factor)
    cpu, cpu_limit = _cores(conf, "driver")
    driver = Resources(cpu, memory, cpu_limit, memory)

    heap = spark_mib(conf.get("spark.executor.memory", "1g"))
    memory = heap + _overhead(conf, "executor", heap, executor_factor)
    if non_jvm and "spark.executor.pyspark.memory" in conf:
        memory += spark_mib(conf["spark.executor.pyspark.memory"])
    if conf.get("spark.memory.offHeap.enabled", "false").lower() == "true":
        memory += spark_mib(conf.get("spark.memory.offHeap.size", "0"))
    cpu, cpu_limit = _cores(conf, "executor")
    executor = Resources(cpu, memory, cpu_limit, memory)

    dynamic = spec.get("dynamicAllocation") or {}
    if dynamic.get("enabled"):
        low = max(int(dynamic.get("minExecutors", 0)), int(dynamic.get("initialExecutors", 0)))
        high = int(dynamic["maxExecutors"])
    else:
        low = high = int(conf.get("spark.executor.instances", DEFAULT_EXECUTOR_INSTANCES))
    return SparkPods(driver, executor, low, high)


# Kubernetes admission -------------------------------------------------------------------------

def limit_range_defaults(item: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(default limits, default requests) of a Container LimitRange item, as the API server
    fills them in: a max without a default becomes the default limit, a default limit without a
    default request becomes the default request, a min without a default request becomes it."""
    default = dict(item.get("default") or {})
    default_request = dict(item.get("defaultRequest") or {})
    for key, value in (item.get("max") or {}).items():
        default.setdefault(key, value)
    for key, value in default.items():
        default_request.setdefault(key, value)
    for key, value in (item.get("min") or {}).items():
        default_request.setdefault(key, value)
    return default, default_request


def admit(container: Resources, limit_range: Mapping[str, Any]) -> tuple[Resources, list[str]]:
    """The container as the LimitRanger admits it (defaults applied) and the reasons it would
    refuse it (below min, above max, request above limit)."""
    problems: list[str] = []
    for item in limit_range["spec"]["limits"]:
        if item.get("type") != "Container":
            continue
        default, default_request = limit_range_defaults(item)
        cpu_limit = container.cpu_limit
        if cpu_limit is None and "cpu" in default:
            cpu_limit = cpu_millis(default["cpu"])
        memory_limit = container.memory_limit
        if memory_limit is None and "memory" in default:
            memory_limit = memory_mib(default["memory"])
        cpu = container.cpu or (cpu_millis(default_request["cpu"]) if "cpu" in default_request else 0)
        memory = container.memory or (
            memory_mib(default_request["memory"]) if "memory" in default_request else 0)
        container = Resources(cpu, memory, cpu_limit, memory_limit)
        for key, value in (item.get("max") or {}).items():
            high = cpu_millis(value) if key == "cpu" else memory_mib(value)
            limit = cpu_limit if key == "cpu" else memory_limit
            if limit is None or limit > high:
                problems.append(f"{key} limit {limit} above the LimitRange max {value}")
        for key, value in (item.get("min") or {}).items():
            low = cpu_millis(value) if key == "cpu" else memory_mib(value)
            if (cpu if key == "cpu" else memory) < low:
                problems.append(f"{key} request below the LimitRange min {value}")
    if container.cpu_limit is not None and container.cpu > container.cpu_limit:
        problems.append("cpu request above its limit")
    if container.memory_limit is not None and container.memory > container.memory_limit:
        problems.append("memory request above its limit")
    return container, problems


def quota_violations(pods: list[Resources], quota: Mapping[str, Any],
                     used: Resources | None = None) -> list[str]:
    """Why a ResourceQuota would refuse some of ``pods`` (admitted containers' sums per pod),
    given what is already ``used``: empty when all of them fit."""
    hard = quota["spec"]["hard"]
    sums = total([used or Resources(cpu_limit=0, memory_limit=0), *pods])
    problems = []
    checks = {"requests.cpu": ("cpu", cpu_millis), "cpu": ("cpu", cpu_millis),
              "requests.memory": ("memory", memory_mib), "memory": ("memory", memory_mib),
              "limits.cpu": ("cpu_limit", cpu_millis), "limits.memory": ("memory_limit", memory_mib)}
    for key, (attribute, parse) in checks.items():
        if key not in hard:
            continue
        value = getattr(sums, attribute)
        if value is None:
            problems.append(f"{key}: a pod states no {attribute.replace('_', ' ')}, which this "
                            "quota requires")
        elif value > parse(hard[key]):
            problems.append(f"{key}: {value} needed, {hard[key]} allowed")
    if "pods" in hard and len(pods) > int(hard["pods"]):
        problems.append(f"pods: {len(pods)} needed, {hard['pods']} allowed")
    return problems


# Nodes ----------------------------------------------------------------------------------------

# Yandex Managed Service for Kubernetes, "Dynamic resource allocation for a node"
# (yandex.cloud/en/docs/managed-kubernetes/concepts/node-group/allocatable-resources): what a
# node keeps for the Kubernetes components, as (size of the band, share kept) from the start.
YANDEX_MEMORY_BANDS_GB = ((4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (math.inf, 0.02))
YANDEX_CPU_BANDS = ((1, 0.06), (1, 0.01), (2, 0.005), (math.inf, 0.0025))
YANDEX_EVICTION_MIB = 100
YANDEX_SMALL_NODE_MIB = 255  # nodes under 1 GB


def _banded(amount: float, bands) -> float:
    kept, left = 0.0, amount
    for size, share in bands:
        part = min(left, size)
        kept += part * share
        left -= part
        if left <= 0:
            break
    return kept


def yandex_allocatable(cores: float, memory_gb: float) -> Resources:
    """A Yandex Managed Kubernetes node's allocatable CPU and memory (the docs' GB read as GiB)."""
    if memory_gb < 1:
        kept_mib = YANDEX_SMALL_NODE_MIB
    else:
        kept_mib = _banded(memory_gb, YANDEX_MEMORY_BANDS_GB) * 1024
    memory = int(memory_gb * 1024 - kept_mib - YANDEX_EVICTION_MIB)
    cpu = int(cores * 1000 - math.ceil(_banded(cores, YANDEX_CPU_BANDS) * 1000))
    return Resources(cpu, memory)


def pack(pods: list[Resources], node: Resources, nodes: int) -> list[list[Resources]] | None:
    """First-fit decreasing of ``pods`` onto ``nodes`` nodes of ``node`` room each (allocatable
    less what every node runs anyway); None when some pod finds no room."""
    bins: list[list[Resources]] = [[] for _ in range(nodes)]
    room = [node] * nodes
    for pod in sorted(pods, key=lambda p: (p.memory, p.cpu), reverse=True):
        for index, free in enumerate(room):
            if pod.fits_in(free):
                bins[index].append(pod)
                room[index] = Resources(free.cpu - pod.cpu, free.memory - pod.memory)
                break
        else:
            return None
    return bins
