"""Writing a benchmark's figures, the same way in every benchmark: JSON, then a table."""

from __future__ import annotations

from pathlib import Path

from fraudops.core import storage


def publish(results: dict, output: Path, decimals: int = 2) -> None:
    """Write ``results`` to ``output`` as JSON and print them as a two-column table."""
    storage.write_json(str(output), results)
    width = max(map(len, ["figure", *results])) + 2
    print(f"\n{'figure':<{width}}{'value':>16}")
    for key, value in results.items():
        shown = f"{value:,.{decimals}f}" if isinstance(value, float) else (
            f"{value:,}" if isinstance(value, int) else str(value))
        print(f"{key:<{width}}{shown:>16}")
    print(f"\nwritten to {output}")
