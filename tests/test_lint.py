"""ruff, with the rule set of pyproject.toml, finds nothing in the Python tree (what `make lint`
checks, run here too so that `make test`, and with it CI, runs it)."""

from __future__ import annotations

import subprocess

import pytest

from tests.paths import REPO
from tests.tools import venv_tool

TREE = ("fraudops", "spark_jobs", "dags", "tests", "benchmarks")


def test_ruff_finds_nothing():
    ruff = venv_tool("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (the dev group installs it)")
    result = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise", *TREE],
                            cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_make_lint_checks_the_same_tree():
    makefile = (REPO / "Makefile").read_text()
    assert f"ruff check {' '.join(TREE)}" in makefile
