"""Shared names (images, namespaces, service accounts, secrets, buckets) from platform.yaml."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

PLATFORM_FILE = Path(__file__).with_name("platform.yaml")


@cache
def platform() -> dict[str, Any]:
    """The parsed platform.yaml; the one source of every shared name."""
    with PLATFORM_FILE.open() as handle:
        return yaml.safe_load(handle)
