"""Offline rendering of everything this repository deploys, and the checks that apply to it.

- ``kustomize(path)``: ``kubectl kustomize`` of an overlay or of k8s/argocd, parsed.
- ``render_mlflow(values)``: our chart through Helm's own Go engine (helm-python-sdk).
- ``validate(obj)``: the object against the Kubernetes OpenAPI schema of ``KUBE_VERSION``
  (kubernetes-validate, strict: unknown fields are errors).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPO

K8S = REPO / "k8s"
CHARTS = REPO / "charts"
MLFLOW_CHART = CHARTS / "mlflow"
OVERLAYS = ("dev", "yandex")
KUBE_VERSION = "1.33.0"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
SHARED_SCHEMAS = REPO.parent / "shared" / "schemas"
# Custom resources: no OpenAPI schema in kubernetes-validate; SparkApplication has the real CRD in
# ../shared/schemas (tests/orchestration validates the DAG's against it), Argo CD's and External
# Secrets Operator's are not vendored here.
CUSTOM_KINDS = {"Application", "SparkApplication", "ExternalSecret"}


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def require_kubectl() -> str:
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed (it renders the Kustomize overlays)")
    return KUBECTL


def kustomize_text(path: Path) -> str:
    result = subprocess.run(
        [require_kubectl(), "kustomize", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@cache
def _kustomize_cached(path: Path) -> str:
    return kustomize_text(path)


def kustomize(path: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize path`` renders (a fresh copy on every call)."""
    return load_all(_kustomize_cached(path))


def helm():
    """helm-python-sdk, or a skip naming why it cannot load here."""
    try:
        import helm_python
    except (ImportError, OSError) as error:  # the native libhelm_c may not load on a platform
        pytest.skip(f"helm-python-sdk cannot load Helm's engine here: {error}")
    return helm_python


def render_chart(chart: Path, values: dict[str, Any] | None = None, *, release: str,
                 namespace: str) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` (install, no cluster) would give."""
    with helm().Chart.load(str(chart)) as loaded:
        return loaded.render(values or {}, name=release, namespace=namespace, is_install=True)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    return [obj for path, text in rendered.items() if not path.endswith("NOTES.txt")
            for obj in load_all(text)]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objs if obj["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in by_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name or ''}: found {len(found)}"
    return found[0]


def validate(obj: dict[str, Any]) -> None:
    """Raise if ``obj`` is not a valid object of its kind for KUBE_VERSION (strict)."""
    import kubernetes_validate

    kubernetes_validate.validate(copy.deepcopy(obj), KUBE_VERSION, strict=True)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def pod_specs(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(``Kind/name``, pod spec) of every workload and bare pod."""
    specs = []
    for obj in objs:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = obj.get("spec", {})
        if obj["kind"] == "Pod":
            specs.append((name, spec))
        elif obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
            specs.append((name, spec["template"]["spec"]))
        elif obj["kind"] == "CronJob":
            specs.append((name, spec["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return pod_spec.get("initContainers", []) + pod_spec.get("containers", [])
