"""`make bench-bootstrap`: the promote step's paired bootstrap, batched as fraudops.model.metrics
does it, against the plain way (resample the rows, then one metric call per model and resample).
Not a test: it prints and writes figures.

    python -m benchmarks.bootstrap --rows-per-day 10000 --days 7

A synthetic test window (about 1% fraud, scores that rank frauds a little higher), both ways on
the same draws of days, in one run: the speed-up is a ratio of two figures measured side by
side. Writes .bench/bootstrap.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.figures import publish
from benchmarks.timing import timed
from fraudops.model import metrics


def synthetic_window(rows_per_day: int, days: int, seed: int = 7):
    """Days, labels and two models' scores of a week-like window."""
    rng = np.random.default_rng(seed)
    n = rows_per_day * days
    y = (rng.random(n) < 0.01).astype(int)
    day_of_row = np.repeat(np.arange(days), rows_per_day)
    return day_of_row, y, rng.random(n) + 0.3 * y, rng.random(n) + 0.25 * y


def plain_bootstrap(groups, y, a, b, draws: np.ndarray) -> np.ndarray:
    """AP difference per resample, each resample's rows gathered and measured on their own."""
    rows_of = [np.flatnonzero(groups == g) for g in range(draws.max() + 1)]
    diffs = np.empty(len(draws))
    for i, draw in enumerate(draws):
        rows = np.concatenate([rows_of[g] for g in draw])
        diffs[i] = (metrics.average_precision(y[rows], a[rows])
                    - metrics.average_precision(y[rows], b[rows]))
    return diffs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-day", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--resamples", type=int, default=1000,
                        help="resamples of the batched bootstrap (the promote step's default)")
    parser.add_argument("--plain-resamples", type=int, default=100,
                        help="resamples of the plain loop (its time grows with each one)")
    parser.add_argument("--output", type=Path, default=Path(".bench/bootstrap.json"))
    args = parser.parse_args(argv)

    groups, y, a, b = synthetic_window(args.rows_per_day, args.days)
    batched_s, result = timed(metrics.paired_bootstrap, metrics.average_precision, groups, y, a,
                              b, n_resamples=args.resamples)
    draws = metrics.group_draws(args.days, args.plain_resamples)  # the batched run's first ones
    plain_s, _ = timed(plain_bootstrap, groups, y, a, b, draws)
    batched_ms = 1000 * batched_s / args.resamples
    plain_ms = 1000 * plain_s / args.plain_resamples
    results = {
        "rows": len(y),
        "groups": args.days,
        "batched_resamples": args.resamples,
        "batched_s": batched_s,
        "batched_ms_per_resample": batched_ms,
        "plain_resamples": args.plain_resamples,
        "plain_ms_per_resample": plain_ms,
        "plain_vs_batched_time_ratio": plain_ms / batched_ms,
        "ap_difference_low": result.low,
        "ap_difference_high": result.high,
    }
    publish(results, args.output, decimals=4)
    return results


if __name__ == "__main__":
    main()
