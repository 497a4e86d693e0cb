"""A secrets scan of the git-tracked files: detect-secrets (PyPI) against the committed baseline of
audited false positives, and the credential formats of Yandex Cloud, which detect-secrets does not
know, with no dependency at all."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.paths import REPO
from tests.tools import venv_tool

BASELINE = REPO / ".secrets.baseline"
# Yandex Cloud IAM tokens (t1.), OAuth tokens (y0_/AQAA), API keys (AQVN), static access key IDs
# (YCAJ/YCA...) and secrets (YC...), and any PEM private key.
YANDEX_CREDENTIAL = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|\bt1\.[A-Za-z0-9_-]{40,}|\by[0-3]_[A-Za-z0-9_-]{40,}"
    r"|\bAQAA[A-Za-z0-9_-]{30,}|\bAQVN[A-Za-z0-9_-]{30,}|\bYCA[A-Za-z0-9_-]{20,}"
    r"|\bYC[A-Za-z0-9_-]{38,})")


def tracked_files() -> list[str]:
    result = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False)
    if result.returncode != 0:
        pytest.skip("not a git checkout: the scan covers git-tracked files")
    return [name for name in result.stdout.decode().split("\0")
            if name and name != BASELINE.name and (REPO / name).is_file()]


def findings(report: dict) -> dict[tuple[str, str], str]:
    """``(type, hashed secret) -> a file holding it``. A known false positive stays known when its
    file moves or its line number changes."""
    return {(item["type"], item["hashed_secret"]): path
            for path, items in report["results"].items() for item in items}


def test_detect_secrets_finds_nothing_new():
    scanner = venv_tool("detect-secrets")
    if scanner is None:
        pytest.skip("detect-secrets is not installed: add detect-secrets==1.5.0 to the dev group "
                    "(pyproject.toml) to scan the tree in make test")
    files = tracked_files()
    result = subprocess.run([scanner, "scan", *files], cwd=REPO, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    found = findings(json.loads(result.stdout))
    baseline = json.loads(BASELINE.read_text())
    known = findings(baseline)
    new = sorted((path, kind) for (kind, secret), path in found.items() if (kind, secret) not in known)
    assert not new, ("possible credentials (remove them, or audit and add them with "
                     "`make secrets-baseline`):\n" + "\n".join(map(str, new)))
    # Every baseline entry was audited as a false positive.
    for path, items in baseline["results"].items():
        for item in items:
            assert item.get("is_secret") is False, f"{path}:{item['line_number']} is not audited"


def test_the_baseline_holds_only_audited_false_positives():
    baseline = json.loads(BASELINE.read_text())
    assert baseline["results"], "an empty baseline: regenerate it with make secrets-baseline"
    for path, items in baseline["results"].items():
        for item in items:
            assert item.get("is_secret") is False, f"{path}:{item['line_number']} is not audited"


def test_no_yandex_cloud_credential_in_the_tree():
    leaks = []
    for name in tracked_files():
        try:
            text = (REPO / name).read_text()
        except UnicodeDecodeError:
            continue
        for match in YANDEX_CREDENTIAL.finditer(text):
            leaks.append(f"{name}: {match.group(0)[:12]}...")
    assert not leaks, leaks


# Built at run time so that this file does not hold what it looks for.
@pytest.mark.parametrize("sample", [
    "token: " + "t1." + "9eu" + "x" * 60,
    "key_id = " + "YCAJ" + "E" + "a" * 22,
    "-----BEGIN " + "PRIVATE KEY-----",
])
def test_the_yandex_patterns_catch_credentials(sample):
    assert YANDEX_CREDENTIAL.search(sample)
