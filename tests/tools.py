"""Command-line tools the tests run, as the dev group installs them: beside the interpreter
running the tests (whatever the virtualenv is called), else on PATH."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def venv_tool(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
