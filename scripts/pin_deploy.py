"""Pin what Argo CD deploys to one commit: the three images of k8s/overlays/yandex
(``<registry>/<name>:<first 12 hex of the commit>``) and the DAG revision that git-sync checks out
(charts/airflow-values.yaml ``dags.gitSync``). The deploy workflow runs it after building the
images of that commit and commits the result, so one commit moves the DAGs and the code they run
together, and reverting it rolls both back.

    python3 scripts/pin_deploy.py <registry, e.g. cr.yandex/<registry id>> <40-hex commit>

It edits the two files in place, keeping their comments; it needs only PyYAML.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudops.core.platform import platform  # noqa: E402

OVERLAY = Path("k8s/overlays/yandex/kustomization.yaml")
AIRFLOW_VALUES = Path("charts/airflow-values.yaml")
TAG_LENGTH = 12
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_IMAGES_BLOCK = re.compile(r"^images:\n(?:(?:  .*|)\n)*", re.MULTILINE)
_GIT_SYNC_BLOCK = re.compile(r"^  gitSync:\n(?:(?:    .*|)\n)*", re.MULTILINE)


def images_block(registry: str, tag: str) -> str:
    lines = ["images:"]
    for key in ("spark", "airflow", "mlflow"):
        name = platform()["images"][key]
        lines += [f"  - name: {name}", f"    newName: {registry}/{name}", f"    newTag: {tag}"]
    return "\n".join(lines) + "\n"


def pin_git_sync(block: str, commit: str) -> str:
    """git-sync v4 checks out ``ref``; the chart also passes the v3 ``rev`` and ``branch``, and
    git-sync refuses a branch together with a rev other than HEAD, so branch goes empty."""
    for key, value in (("branch", '""'), ("rev", commit), ("ref", commit)):
        block, count = re.subn(rf"^    {key}: .*$", f"    {key}: {value}", block, flags=re.MULTILINE)
        if count != 1:
            raise SystemExit(f"{AIRFLOW_VALUES}: expected one dags.gitSync.{key}, found {count}")
    return block


def replace_block(text: str, pattern: re.Pattern, new, path: Path) -> str:
    matches = list(pattern.finditer(text))
    if len(matches) != 1:
        raise SystemExit(f"{path}: expected one {pattern.pattern.split(':')[0][1:]} block")
    match = matches[0]
    return text[:match.start()] + new(match.group(0)) + text[match.end():]


def pin(root: Path, registry: str, commit: str) -> None:
    if not _COMMIT.match(commit):
        raise SystemExit(f"commit must be 40 lowercase hex digits, not {commit!r}")
    registry = registry.rstrip("/")
    overlay = root / OVERLAY
    overlay.write_text(replace_block(overlay.read_text(), _IMAGES_BLOCK,
                                     lambda _: images_block(registry, commit[:TAG_LENGTH]), OVERLAY))
    values = root / AIRFLOW_VALUES
    values.write_text(replace_block(values.read_text(), _GIT_SYNC_BLOCK,
                                    lambda block: pin_git_sync(block, commit), AIRFLOW_VALUES))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("registry")
    parser.add_argument("commit")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to edit")
    args = parser.parse_args(argv)
    pin(args.root, args.registry, args.commit)


if __name__ == "__main__":
    main()
