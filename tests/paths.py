"""The repository root, defined once for every test."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
