"""checkov once per session over everything it checks.

Each test module that checks something with checkov registers a *target*: a function that
writes the files to check into a folder it is given (or returns another folder to check as it
is). The session fixture ``checkov_reports`` (tests/conftest.py) builds every registered target
and runs one checkov process over all of them, each folder as its own root (``-d`` once per
target): checkov starts once, and its graph checks (a NetworkPolicy selecting a pod) still see
only the files of one target, as separate runs did. Only the targets of the collected modules
are built, so running one module runs checkov over its target alone.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.paths import REPO

CHECKOV = REPO / "tools" / "checkov" / ".venv" / "bin" / "checkov"
FRAMEWORKS = ("kubernetes", "dockerfile", "terraform")
MISSING = "checkov is not installed (make setup creates tools/checkov/.venv)"
TIMEOUT = 600

# target name -> a function of an empty folder that fills it, or returns the folder to check.
TARGETS: dict[str, Callable[[Path], Path | None]] = {}

requires_checkov = pytest.mark.skipif(not CHECKOV.exists(), reason=MISSING)


def target(name: str):
    """Register the decorated function as the checkov target ``name``."""
    def register(build: Callable[[Path], Path | None]):
        TARGETS[name] = build
        return build
    return register


def parse(stdout: str) -> list[list[dict]]:
    """checkov's JSON output, one document per root folder: each a list of per-framework
    reports (a single report stands alone)."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while (at := _skip_space(stdout, at)) < len(stdout):
        document, at = decoder.raw_decode(stdout, at)
        documents.append(document if isinstance(document, list) else [document])
    return documents


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def scan(root: Path) -> dict[str, dict | str]:
    """{target: {framework: report}} for every registered target, or {target: why skipped}."""
    folders, skipped = {}, {}
    for name, build in sorted(TARGETS.items()):
        folder = root / name
        folder.mkdir(parents=True)
        try:
            folders[name] = build(folder) or folder
        except pytest.skip.Exception as skip:
            skipped[name] = str(skip.msg)
    reports: dict[str, dict | str] = dict(skipped)
    if not folders:
        return reports
    command = [str(CHECKOV), "--framework", *FRAMEWORKS, "--skip-download", "--output", "json"]
    for folder in folders.values():
        command += ["-d", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                            check=False)
    assert result.stdout.strip(), result.stderr[-2000:]
    documents = parse(result.stdout)
    assert len(documents) == len(folders), (len(documents), list(folders))
    for name, document in zip(folders, documents, strict=True):
        reports[name] = {r["check_type"]: r for r in document if r.get("check_type")}
    return reports


def report(reports: dict[str, dict | str], name: str, framework: str) -> dict:
    """The report of ``framework`` on target ``name``; skips the test where the target was."""
    found = reports[name]
    if isinstance(found, str):
        pytest.skip(found)
    assert framework in found, f"checkov found no {framework} files in target {name}"
    return found[framework]
