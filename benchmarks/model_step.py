"""`make bench-model`: wall time of one day's train and promote on the demo lake, run as the DAG
runs them (``python -m`` subprocesses on local[*], JVM start included). Not a test.

    python -m benchmarks.model_step

Generates the demo's lake (fraudops.orchestration.demo defaults), cleans and builds features up to the
demo's first logical date, trains and promotes there (the first champion), then adds the next
day and times that day's train and promote: a challenger compared with a champion, the daily
case. Writes .bench/model_step.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
from pathlib import Path

from benchmarks.figures import publish
from benchmarks.timing import timed
from fraudops.core import config, storage
from fraudops.core.lake import Lake
from fraudops.core.steps import STEPS, RunContext
from fraudops.orchestration import demo
from fraudops.orchestration.local import StepProcess, isolated_environment, local_command
from fraudops.orchestration.settings import parse_step_args
from fraudops.simulator.generate import generate_lake

log = logging.getLogger(__name__)
BAR_SECONDS = 180  # the bar: train plus promote for one day of the demo lake


def step_seconds(name: str, ctx: RunContext, env: dict[str, str], logfile) -> float:
    seconds, _ = timed(StepProcess(local_command(STEPS[name], ctx), env).run,
                       lambda line: print(line, file=logfile))
    log.info("%s %s: %.1f s", name, ctx.ds, seconds)
    return seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(".bench/model"))
    parser.add_argument("--output", type=Path, default=Path(".bench/model_step.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    setup = demo.parse_args([])  # the demo lake: one definition of its size and dates

    home = args.workdir.resolve()
    shutil.rmtree(home, ignore_errors=True)
    lake = Lake(config.lake_root_in(home))
    days = [(demo.START + dt.timedelta(days=setup.first_day + i)).isoformat() for i in (0, 1)]
    generated = generate_lake(lake, demo.START, setup.first_day + 2, setup.customers,
                              setup.terminals, seed=setup.seed, defect_rate=setup.defect_rate)
    env = isolated_environment(home, lake.root)
    extra = {step: parse_step_args(value) for step, value in demo.DEMO_STEP_ARGS.items()}

    timings: dict[str, dict[str, float]] = {}
    with open(home / "steps.log", "w") as logfile:
        for day in days:
            ctx = RunContext(day, f"bench-{day}", lake.root, extra_args=extra)
            timings[day] = {name: step_seconds(name, ctx, env, logfile)
                            for name in ("clean", "features", "train", "promote")}
    decision = storage.read_json(lake.run_summary("promote", f"bench-{days[1]}"))
    daily = timings[days[1]]
    results = {
        "lake_transactions": generated["transactions"],
        "first_day": days[0],
        "daily_day": days[1],
        "first_champion_train_s": round(timings[days[0]]["train"], 1),
        "first_champion_promote_s": round(timings[days[0]]["promote"], 1),
        "train_s": round(daily["train"], 1),
        "promote_s": round(daily["promote"], 1),
        "train_plus_promote_s": round(daily["train"] + daily["promote"], 1),
        "bar_s": BAR_SECONDS,
        "train_plus_promote_vs_bar": round((daily["train"] + daily["promote"]) / BAR_SECONDS, 2),
        "decision": decision["decision"],
        "cpus": os.cpu_count(),
    }
    publish(results, args.output)
    return results


if __name__ == "__main__":
    main()
