"""The SparkApplication's main file: ``entry.py <module> <args...>`` runs ``python -m <module>``.

spark-submit runs a Python *file*, while every step is a module of the spark_jobs package with
relative imports; this bridge runs the module as ``__main__`` with the step's own arguments,
exactly as the local launcher's ``python -m`` does.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding spark_jobs/ and fraudops/


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: entry.py <module> [args...]")
    module, *args = argv
    # Python put this file's folder first on sys.path; the package root belongs there instead,
    # so that spark_jobs and fraudops import even when the image did not pip-install it.
    if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
        sys.path[0] = str(PACKAGE_ROOT)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
