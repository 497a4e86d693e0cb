"""A job run as ``python -m`` logs as ``__main__``: its lines must survive the root-logger reset
that opening a SQLite MLflow store makes (the demo echoes them, e.g. train's path)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.paths import REPO

SCRIPT = """
import logging
from fraudops.core import cli
from fraudops.model import tracking
cli.setup_logging()
tracking.setup()
logging.getLogger(__name__).info("training path: refit")
"""


def test_a_module_run_as_main_keeps_its_info_lines_after_mlflow_setup(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "FRAUDOPS_HOME": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300, check=True)
    assert "INFO __main__: training path: refit" in result.stderr
