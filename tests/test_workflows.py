""".github/workflows: actionlint-clean, and no step reads a file that a clean checkout lacks (the
files they name are tracked by git; the Dockerfiles' COPY sources are checked the same way in
tests/k8s/test_images.py)."""

from __future__ import annotations

import itertools
import re
import subprocess

import pytest
import yaml

from tests.paths import REPO
from tests.tools import venv_tool

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yaml"))
ACTIONLINT = venv_tool("actionlint")
# A repository-relative path: at least one folder, then a name (kept only when its first folder
# is in the repository).
_PATH = re.compile(r"(?<![\w/.$@{-])\.?/?((?:[\w.-]+/)+[\w.-]*\w)")
_MATRIX = re.compile(r"\$\{\{\s*matrix\.(\w+)\s*\}\}")


def tracked(path: str) -> bool:
    result = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=REPO,
                            capture_output=True, text=True, check=False)
    return result.returncode == 0


def step_texts(workflow: dict):
    """(job, text) of every `run` script, `uses` and `with` value, once per matrix combination."""
    for job_name, job in workflow.get("jobs", {}).items():
        matrix = {k: v for k, v in ((job.get("strategy") or {}).get("matrix") or {}).items()
                  if isinstance(v, list)}
        combos = [dict(zip(matrix, values)) for values in itertools.product(*matrix.values())]
        texts = []
        if "uses" in job:
            texts.append(job["uses"])
        for step in job.get("steps", []):
            texts += [str(step.get("run", "")), str(step.get("uses", ""))]
            texts += [str(value) for value in (step.get("with") or {}).values()]
        for combo in combos or [{}]:
            for text in texts:
                yield job_name, _MATRIX.sub(
                    lambda m, combo=combo: str(combo.get(m.group(1), m.group(0))), text)


def named_paths(text: str) -> set[str]:
    found = set()
    for match in _PATH.finditer(text):
        path = match.group(1)
        if "://" in text[max(0, match.start() - 12):match.start() + 3] or "${{" in path \
                or ".." in path.split("/"):
            continue  # a URL, an unexpanded expression, a path relative to another folder
        if (REPO / path.split("/")[0]).exists() or path.startswith(".github/"):
            found.add(path)
    return found


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_steps_read_only_files_in_git(workflow):
    missing = {(job, path) for job, text in step_texts(yaml.safe_load(workflow.read_text()))
               for path in named_paths(text) if not tracked(path)}
    assert not missing, f"{workflow.name}: steps name files that are not in git: {sorted(missing)}"


def test_the_path_check_finds_a_missing_file():
    workflow = {"jobs": {"build": {"strategy": {"matrix": {"image": ["spark", "mlflow"]}},
                                   "steps": [{"run": "sha512sum -c images/spark/jars.sha512"},
                                             {"with": {"file": "images/${{ matrix.image }}/Dockerfile"}}]}}}
    paths = {path for _, text in step_texts(workflow) for path in named_paths(text)}
    assert paths == {"images/spark/jars.sha512", "images/spark/Dockerfile", "images/mlflow/Dockerfile"}
    assert not tracked("images/spark/jars.sha512") and tracked("images/spark/Dockerfile")


def test_the_deploy_commit_pins_images_and_dags_with_the_script():
    deploy = yaml.safe_load((REPO / ".github" / "workflows" / "deploy.yaml").read_text())
    runs = " ".join(str(step.get("run", "")) for step in deploy["jobs"]["bump"]["steps"])
    assert 'scripts/pin_deploy.py "cr.yandex/${{ vars.YC_REGISTRY_ID }}" "$GITHUB_SHA"' in runs
    assert "git commit -am" in runs


def test_actionlint_finds_nothing():
    if ACTIONLINT is None:
        pytest.skip("actionlint is not installed (the dev group installs it)")
    result = subprocess.run([ACTIONLINT, "-no-color", *map(str, WORKFLOWS)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
