"""Synthetic raw files: the handbook's simulated transactions, one text file per day.

    python -m fraudops.simulator.generate --lake-root data/lake --days 183 --seed 0
    python -m fraudops.simulator.generate --days 30 --defect-rate 0.01     # with realistic defects
    python -m fraudops.simulator.generate --redeliver 2018-04-05           # deliver a day again
    python -m fraudops.simulator.generate --days 90 --change-day 73        # the world changes

Each day becomes ``<lake>/raw/YYYY-MM-DD.txt`` in the delivered format: the header line, then
comma-separated rows, sorted by time, transaction ids increasing over the whole run. The
simulation itself lives in fraudops.simulator.handbook; this module formats, damages on request and
writes. With ``--defect-rate R`` a share R of the rows gets one defect each (the kinds are the
cleaning job's quarantine reasons) and some files are delivered twice; what was injected is
written to ``<lake>/_state/injected_defects.json`` so the cleaning job can be checked against it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import sys
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from fraudops.core import cli, config, storage
from fraudops.core.lake import RAW_SUFFIX, Lake
from fraudops.core.rawformat import (
    BAD_TIMESTAMP,
    DUPLICATE_ID,
    EMPTY_FIELD,
    NEGATIVE_AMOUNT,
    NEGATIVE_ID,
    NON_NUMERIC,
    RAW_COLUMNS,
    RAW_HEADER,
    TOO_FEW_FIELDS,
    TOO_MANY_FIELDS,
    WRONG_DAY,
)
from fraudops.simulator.handbook import (
    DAY_SECONDS,
    Day,
    SimulationParams,
    WorldChange,
    make_profiles,
    rng_for,
    simulate,
)

log = logging.getLogger(__name__)

HEADER_LINE = (RAW_HEADER + "\n").encode()
INJECTED_DEFECTS_FILE = "injected_defects.json"
DUPLICATE_FILE = "duplicate_file"
ROW_DEFECTS = (
    DUPLICATE_ID, EMPTY_FIELD, NEGATIVE_AMOUNT, NON_NUMERIC, BAD_TIMESTAMP, WRONG_DAY,
    NEGATIVE_ID, TOO_FEW_FIELDS, TOO_MANY_FIELDS,
)
STREAM_ROW_DEFECTS, STREAM_FILE_DEFECTS = 10, 11  # beside the simulator's streams

_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=1 << 16)
_CENTS = pa.decimal128(18, 2)  # prints as 70.91 / 146.00, exactly


# --- formatting -------------------------------------------------------------------------------


def _datetimes(day: Day) -> np.ndarray:
    return np.datetime64(day.date, "s") + day.seconds_of_day.astype("timedelta64[s]")


def _decimal_cents(cents: np.ndarray) -> pa.Array:
    """int64 cents as decimal(18, 2) without arithmetic: a decimal128 is its unscaled integer."""
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)  # two's-complement high word
    return pa.Array.from_buffers(_CENTS, len(cents), [None, pa.py_buffer(words)])


def day_table(day: Day) -> pa.Table:
    """The day's rows as typed columns in the raw file's order."""
    columns = [
        pa.array(day.transaction_id),
        pa.array(_datetimes(day), pa.timestamp("s")),
        pa.array(day.customer_id),
        pa.array(day.terminal_id),
        _decimal_cents(day.amount_cents),
        pa.array(day.tx_time_seconds),
        pa.array(np.full(day.size, day.index, dtype=np.int64)),
        pa.array(day.tx_fraud),
        pa.array(day.fraud_scenario),
    ]
    return pa.Table.from_arrays(columns, names=RAW_COLUMNS)


def format_rows(day: Day) -> bytes:
    """The data lines of a day file, each ending with a newline (no header)."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(day_table(day), sink, _CSV_OPTIONS)
    return sink.getvalue().to_pybytes()


def day_frame(day: Day) -> pd.DataFrame:
    """The day as a pandas frame with the raw columns (amounts as floats)."""
    return pd.DataFrame(
        {
            "transaction_id": day.transaction_id,
            "tx_datetime": _datetimes(day),
            "customer_id": day.customer_id,
            "terminal_id": day.terminal_id,
            "tx_amount": day.amount_cents / 100,
            "tx_time_seconds": day.tx_time_seconds,
            "tx_time_days": np.full(day.size, day.index, dtype=np.int64),
            "tx_fraud": day.tx_fraud,
            "tx_fraud_scenario": day.fraud_scenario,
        },
        columns=RAW_COLUMNS,
    )


# --- defects ----------------------------------------------------------------------------------

_ID, _DATETIME, _CUSTOMER, _TERMINAL, _AMOUNT, _SECONDS, _DAYS = (
    RAW_COLUMNS.index(name)
    for name in (
        "transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount",
        "tx_time_seconds", "tx_time_days",
    )
)
_NUMERIC = [i for i in range(len(RAW_COLUMNS)) if i != _DATETIME]
_NOT_NUMBERS = ("abc", "n/a", "1.2.3", "12x", "#N/A", "--")  # no commas: that is the separator


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _restamp(fields: list[str], shift_days: int) -> list[str]:
    """The same row moved ``shift_days`` days, its three time fields kept consistent."""
    moved = list(fields)
    when = dt.datetime.fromisoformat(fields[_DATETIME]) + dt.timedelta(days=shift_days)
    moved[_DATETIME] = when.strftime("%Y-%m-%d %H:%M:%S")
    moved[_SECONDS] = str(int(fields[_SECONDS]) + shift_days * DAY_SECONDS)
    moved[_DAYS] = str(int(fields[_DAYS]) + shift_days)
    return moved


def _empty_field(fields, rng):
    fields[int(rng.integers(len(fields)))] = ""
    return fields


def _negative_amount(fields, rng):
    negated = "-" + fields[_AMOUNT]  # "-0.00" is zero, a valid amount
    fields[_AMOUNT] = _pick(rng, ("-0.01", negated if float(negated) < 0 else "-0.01"))
    return fields


def _non_numeric(fields, rng):
    fields[_pick(rng, _NUMERIC)] = _pick(rng, _NOT_NUMBERS)
    return fields


def _bad_timestamp(fields, rng):
    date, clock = fields[_DATETIME].split(" ")
    year, month, mday = date.split("-")
    hh, mm, ss = clock.split(":")
    beyond = int(rng.integers(60, 100))
    fields[_DATETIME] = _pick(rng, (
        f"{date} 24:{mm}:{ss}",
        f"{date} {hh}:{beyond}:{ss}",
        f"{date} {hh}:{mm}:{beyond}",
        f"{year}-{month}-{beyond // 2 + 2} {clock}",  # day of month 32..51
        f"{year}-{beyond // 4 - 2}-{mday} {clock}",  # month 13..22
        f"{year}/{month}/{mday} {clock}",
        f"{date}T{clock}",
        f"{date} {hh}:{mm}",
        f"{mday}.{month}.{year} {clock}",
    ))
    return fields


def _wrong_day(fields, rng):
    shift = int(rng.integers(1, 4)) * _pick(rng, (-1, 1))
    if int(fields[_DAYS]) + shift < 0:
        shift = -shift
    return _restamp(fields, shift)


def _negative_id(fields, rng):
    column = _pick(rng, (_CUSTOMER, _TERMINAL))
    fields[column] = f"-{max(int(fields[column]), 1)}"
    return fields


def _too_few_fields(fields, rng):
    return fields[: len(fields) - int(rng.integers(1, 4))]  # a truncated line


def _too_many_fields(fields, rng):
    variant = int(rng.integers(3))
    if variant == 0:  # a decimal comma splits the amount in two
        fields[_AMOUNT] = fields[_AMOUNT].replace(".", ",")
        return fields
    return fields + (["0"] if variant == 1 else [""])


_CORRUPT = {
    EMPTY_FIELD: _empty_field,
    NEGATIVE_AMOUNT: _negative_amount,
    NON_NUMERIC: _non_numeric,
    BAD_TIMESTAMP: _bad_timestamp,
    WRONG_DAY: _wrong_day,
    NEGATIVE_ID: _negative_id,
    TOO_FEW_FIELDS: _too_few_fields,
    TOO_MANY_FIELDS: _too_many_fields,
}


def injected_defects_path(lake: Lake) -> str:
    return lake.path("_state", INJECTED_DEFECTS_FILE)


def file_name(day: dt.date) -> str:
    return f"{day.isoformat()}{RAW_SUFFIX}"


class DefectInjector:
    """Damages a share of each day's rows, one defect per chosen row, and remembers what.

    Each record names the transaction, the file the defective line is in and the line itself,
    so the quarantine can be matched line for line. A duplicate_id record is the extra line:
    an exact copy in the same file, or the same transaction stamped on one of the next 3 days
    and delivered in that day's file. Clean rows are left byte-identical to a run without
    defects: the defects use their own random streams.
    """

    def __init__(self, params: SimulationParams, rate: float) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"defect rate must be within [0, 1], got {rate}")
        self.params, self.rate = params, rate
        self.rows: dict[str, list[dict]] = {kind: [] for kind in ROW_DEFECTS}
        self.late_copies: dict[int, list[tuple[int, str]]] = defaultdict(list)
        n_files = min(params.days, math.ceil(rate * params.days))
        chosen = rng_for(params.seed, STREAM_FILE_DEFECTS).choice(params.days, n_files, False)
        self.redelivered_days = sorted(int(i) for i in chosen)

    def _record(self, kind: str, transaction_id: int, day: dt.date, line: str) -> None:
        self.rows[kind].append(
            {"transaction_id": transaction_id, "file": file_name(day), "line": line}
        )

    def _duplicate(self, day: Day, row: int, line: str, rng) -> tuple[int, str] | None:
        """Schedule a copy of the row; returns (position, line) when it goes in this file."""
        fields = line.split(",")
        lag = int(rng.integers(1, 4))
        if rng.random() < 0.5 or day.index + lag >= self.params.days:
            self._record(DUPLICATE_ID, int(fields[_ID]), day.date, line)
            return row + 1, line
        copy = ",".join(_restamp(fields, lag))
        self.late_copies[day.index + lag].append((int(day.seconds_of_day[row]), copy))
        self._record(DUPLICATE_ID, int(fields[_ID]), self.params.date(day.index + lag), copy)
        return None

    def apply(self, day: Day, body: bytes) -> bytes:
        """The day's data lines with this day's defects and earlier days' late copies."""
        rng = rng_for(self.params.seed, STREAM_ROW_DEFECTS, day.index)
        chosen = np.flatnonzero(rng.random(day.size) < self.rate)
        kinds = rng.integers(0, len(ROW_DEFECTS), len(chosen))
        late = self.late_copies.pop(day.index, [])
        if not len(chosen) and not late:
            return body
        lines = body.decode().split("\n")[:-1]
        inserts = []
        for row, kind in zip(chosen.tolist(), kinds.tolist()):  # only the chosen rows
            kind = ROW_DEFECTS[kind]
            if kind == DUPLICATE_ID:
                if same_file := self._duplicate(day, row, lines[row], rng):
                    inserts.append(same_file)
                continue
            transaction_id = int(day.transaction_id[row])
            lines[row] = ",".join(_CORRUPT[kind](lines[row].split(","), rng))
            self._record(kind, transaction_id, day.date, lines[row])
        positions = np.searchsorted(day.seconds_of_day, [s for s, _ in late], "right")
        inserts += [(int(p), line) for p, (_, line) in zip(positions, late)]
        for position, line in sorted(inserts, key=lambda item: item[0], reverse=True):
            lines.insert(position, line)
        return ("\n".join(lines) + "\n").encode()

    def report(self) -> dict:
        counts = {kind: len(records) for kind, records in self.rows.items()}
        counts[DUPLICATE_FILE] = len(self.redelivered_days)
        return {
            "defect_rate": self.rate,
            "seed": self.params.seed,
            "counts": counts,
            "rows": self.rows,
            "files": {
                DUPLICATE_FILE: [file_name(self.params.date(i)) for i in self.redelivered_days]
            },
        }


def redeliver_day(lake: Lake, day: str | dt.date) -> str:
    """Deliver a day's file again, byte for byte (a new mtime, the same content)."""
    path = lake.raw_file(str(day))
    storage.write_bytes(path, storage.read_bytes(path))
    return path


# --- the lake ---------------------------------------------------------------------------------


def generate_lake(
    lake: Lake,
    start_date: dt.date | str = SimulationParams.start_date,
    days: int = SimulationParams.days,
    customers: int = SimulationParams.customers,
    terminals: int = SimulationParams.terminals,
    radius: float = SimulationParams.radius,
    seed: int = SimulationParams.seed,
    defect_rate: float = 0.0,
    log_every: int = 30,
    change: WorldChange | None = None,
) -> dict:
    """Write the simulation's day files into ``lake`` and return a summary (with rows/s).

    ``change``: the world changes on that day (handbook.WorldChange); None, the default, is
    the handbook's steady world."""
    params = SimulationParams(start_date, days, customers, terminals, radius, seed, change)
    injector = DefectInjector(params, defect_rate)
    started = time.perf_counter()
    transactions = lines = 0
    by_scenario = np.zeros(4, dtype=np.int64)
    for day in simulate(params, make_profiles(params)):
        body = format_rows(day)
        if defect_rate:
            body = injector.apply(day, body)
        storage.write_bytes(lake.raw_file(day.date.isoformat()), HEADER_LINE + body)
        transactions += day.size
        lines += body.count(b"\n")
        by_scenario += np.bincount(day.fraud_scenario, minlength=4)
        if (day.index + 1) % log_every == 0 or day.index + 1 == params.days:
            log.info(
                "%s: %d/%d days, %d transactions, %.0f rows/s", day.date, day.index + 1,
                params.days, transactions, transactions / (time.perf_counter() - started),
            )
    for index in injector.redelivered_days:
        redeliver_day(lake, params.date(index))
    injected = injector.report()
    storage.write_json(injected_defects_path(lake), injected)
    seconds = time.perf_counter() - started
    frauds = int(by_scenario[1:].sum())
    return {
        "lake_root": lake.root,
        "files": params.days,
        "first_day": params.start_date.isoformat(),
        "last_day": params.date(params.days - 1).isoformat() if params.days else None,
        "transactions": transactions,
        "data_lines": lines,
        "frauds": frauds,
        "fraud_rate": frauds / transactions if transactions else 0.0,
        "fraud_by_scenario": {str(s): int(by_scenario[s]) for s in (1, 2, 3)},
        "defects": injected["counts"],
        "change": None if change is None else {
            "day": params.date(change.day).isoformat(), "pace_factor": change.pace_factor,
            "testing_tx_per_day": change.testing_tx_per_day},
        "seconds": round(seconds, 3),
        "rows_per_second": round(transactions / seconds) if seconds else None,
    }


def parser() -> argparse.ArgumentParser:
    defaults = SimulationParams()
    p = argparse.ArgumentParser(
        prog="python -m fraudops.simulator.generate",
        description="Generate the handbook's simulated card transactions as daily raw files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--lake-root", default=None, help="lake root, a local path or "
                   f"s3a://bucket/prefix (default: ${config.LAKE_ROOT_ENV} or ./data/lake)")
    p.add_argument("--start-date", type=cli.date_arg, default=defaults.start_date,
                   help="first simulated day, YYYY-MM-DD")
    p.add_argument("--days", type=int, default=defaults.days, help="number of days (files)")
    p.add_argument("--customers", type=int, default=defaults.customers)
    p.add_argument("--terminals", type=int, default=defaults.terminals)
    p.add_argument("--radius", type=float, default=defaults.radius,
                   help="a customer uses the terminals closer than this (grid is 100 x 100)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="same seed, same bytes")
    p.add_argument("--defect-rate", type=float, default=0.0,
                   help="share of rows to damage, one defect each; some files are also "
                   f"delivered twice; recorded in <lake>/_state/{INJECTED_DEFECTS_FILE}")
    p.add_argument("--change-day", type=int, default=None, metavar="N",
                   help="the world changes from day index N on (0 = the first day): customers "
                   "shop more often and compromised cards also make small card-testing "
                   "transactions at night (fraudops.simulator.handbook.WorldChange); "
                   "default: no change")
    p.add_argument("--log-every", type=int, default=30, help="log progress every N days")
    p.add_argument("--redeliver", type=cli.date_arg, metavar="DAY", default=None,
                   help="only deliver this day's existing file again (same bytes) and exit")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    cli.setup_logging()
    lake = Lake.from_env(args.lake_root)
    if args.redeliver:
        path = redeliver_day(lake, args.redeliver)
        log.info("delivered %s again", path)
        return {"redelivered": path}
    summary = generate_lake(
        lake, args.start_date, args.days, args.customers, args.terminals, args.radius,
        args.seed, args.defect_rate, max(args.log_every, 1),
        None if args.change_day is None else WorldChange(args.change_day),
    )
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return summary


if __name__ == "__main__":
    main()
