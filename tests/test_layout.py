"""The code is grouped by where it runs: each image carries exactly the packages its code
imports, the Airflow side and the core never import PySpark, and no packages import in a circle.

Read from the source (every import statement, also those inside functions) and from the
Dockerfiles' COPY lines, so a new import or a new package cannot slip past either.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from fraudops.core.steps import STEPS
from tests.paths import REPO

OURS = ("fraudops", "spark_jobs", "dags", "benchmarks", "tests")
NO_PYSPARK = ("fraudops.core", "fraudops.orchestration", "fraudops.simulator", "dags")


def module_name(path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def modules(*packages: str) -> dict[str, set[str]]:
    """Each module of ``packages`` and the modules it imports (absolute names)."""
    found = {}
    for package in packages:
        for path in sorted((REPO / package.replace(".", "/")).rglob("*.py")):
            imported = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    imported |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module)
                    imported |= {f"{node.module}.{alias.name}" for alias in node.names}
            found[module_name(path)] = imported
    return found


def ours(name: str, known: dict) -> str | None:
    """The module of ours that an imported name refers to (a name may be a module's member)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def package_of(module: str) -> str:
    is_package = (REPO / module.replace(".", "/") / "__init__.py").exists()
    return module if is_package else module.rpartition(".")[0]


def closure(roots: list[str], known: dict) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [m for name in known[module] if (m := ours(name, known)) and m not in seen]
    return seen


def shipped_modules(image: str) -> set[str]:
    """The modules of ours (no package __init__) an image's Dockerfile copies into /opt/fraudops,
    less what .dockerignore keeps out of the build context."""
    from tests.k8s.test_images import dockerignored

    dockerfile = (REPO / "images" / image / "Dockerfile").read_text()
    found = set()
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) /opt/fraudops/", dockerfile, re.M):
        path = REPO / source.rstrip("/")
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        found |= {module_name(f) for f in files if f.suffix == ".py" and f.name != "__init__.py"
                  and not dockerignored(str(f.relative_to(REPO)))}
    return found


def copied_packages(image: str) -> set[str]:
    """The Python packages an image's Dockerfile copies into /opt/fraudops."""
    dockerfile = (REPO / "images" / image / "Dockerfile").read_text()
    sources = re.findall(r"^COPY (?:--\S+ )*(\S+) /opt/fraudops/", dockerfile, re.M)
    return {s.rstrip("/").removesuffix("/__init__.py").replace("/", ".") for s in sources
            if s.endswith(".py") or (REPO / s / "__init__.py").exists()}


KNOWN = modules("fraudops", "spark_jobs", "dags")
ENTRY_POINTS = {
    "spark": [step.module for step in STEPS.values()]
    + ["spark_jobs.entry", "fraudops.model.rollback"],
    "airflow": ["dags.fraud_retraining"],
}
# Run on a developer's machine and by the tests only: no image carries them (.dockerignore).
DEV_TOOLS = ("fraudops.orchestration.demo", "fraudops.orchestration.local_airflow")


@pytest.mark.parametrize("image, entry_points", ENTRY_POINTS.items())
def test_each_image_copies_exactly_the_packages_its_code_imports(image, entry_points):
    needed = {m for m in closure(entry_points, KNOWN) if not m.startswith("dags")}
    packages = {package_of(m) for m in needed} | {"fraudops"}
    copied = copied_packages(image)
    assert {p for p in packages if p not in copied} == set(), f"{image} image lacks them"
    assert {p for p in copied if p != "fraudops" and p not in packages} == set(), \
        f"{image} image ships packages none of its code imports"


@pytest.mark.parametrize("image", ENTRY_POINTS)
def test_each_module_an_image_ships_is_run_by_an_image(image):
    """No test-only or dead module in an image: each one it ships is imported, directly or not,
    by the entry points of one of the images (the core is shared), and no dev tool is shipped."""
    run = closure([m for points in ENTRY_POINTS.values() for m in points], KNOWN)
    shipped = shipped_modules(image)
    assert shipped - run == set(), f"{image} image ships modules no image runs"
    assert shipped & set(DEV_TOOLS) == set()


def test_the_dev_tools_exist_and_stay_out_of_the_images():
    assert all(m in KNOWN for m in DEV_TOOLS)
    assert all(m not in shipped_modules(image) for m in DEV_TOOLS for image in ENTRY_POINTS)


@pytest.mark.parametrize("package", NO_PYSPARK)
def test_only_the_spark_side_imports_pyspark(package):
    offenders = {m for m, names in KNOWN.items() if m.startswith(package)
                 and any(n == "pyspark" or n.startswith("pyspark.") for n in names)}
    assert offenders == set()


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_between_modules():
    graph = {m: {o for n in names if (o := ours(n, KNOWN)) and o != m}
             for m, names in KNOWN.items()}
    assert circles(graph) == []


def test_no_import_circle_between_packages():
    """fraudops.model may not import spark_jobs while spark_jobs imports fraudops.model, even
    when no two modules import each other."""
    graph: dict[str, set[str]] = {}
    for module, names in KNOWN.items():
        edges = graph.setdefault(package_of(module), set())
        edges |= {package_of(o) for n in names if (o := ours(n, KNOWN))} - {package_of(module)}
    for targets in list(graph.values()):
        for target in targets:
            graph.setdefault(target, set())
    assert circles(graph) == []


def test_the_circle_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_report_step_needs_no_spark():
    """report reads MLflow and the score ledger only: nothing it imports imports PySpark, so its
    driver never starts a SparkContext and never asks for an executor (the SparkApplication CRD
    still declares one: its instances are at least 1)."""
    needed = closure(["spark_jobs.report"], KNOWN)
    offenders = {m for m in needed
                 if any(n == "pyspark" or n.startswith("pyspark.") for n in KNOWN[m])}
    assert offenders == set()


def test_core_and_orchestration_import_without_pyspark():
    """Every module of the Airflow side and the core, in a fresh interpreter where any import
    of pyspark fails, as in the Airflow image."""
    script = (
        "import importlib, sys\n"
        "sys.modules['pyspark'] = None\n"
        f"for name in {sorted(m for m in KNOWN if m.startswith(NO_PYSPARK[:2]))!r}:\n"
        "    importlib.import_module(name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
