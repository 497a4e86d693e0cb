"""`make bench-model`: wall time of one day's train, promote and score on the demo lake, run as
the DAG runs them (``python -m`` subprocesses on local[*], JVM start included). Not a test.

    python -m benchmarks.model_step

Generates the demo's lake (fraudops.orchestration.demo defaults), cleans and builds features up to
the demo's first logical date, trains (a tuning: no configuration yet) and promotes there (the
first champion), then adds the next day and times that day's train (a refit of that
configuration), promote and score: the daily case. Then it times a tuning of the same day
(train --tune), so that a refit day and a tuning day are measured in the same run. Writes
.bench/model_step.json.
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
from fraudops.simulator.handbook import WorldChange

log = logging.getLogger(__name__)
BAR_SECONDS = 180  # the bar: train plus promote for one day of the demo lake
REFIT_TO_TUNE_BAR = 0.3  # the bar: a refit day costs at most 0.3 of a tuning day


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
    first = setup.run_days[0]
    days = [(demo.START + dt.timedelta(days=first + i)).isoformat() for i in (0, 1)]
    change = WorldChange(setup.change_day) if setup.change_day >= 0 else None
    generated = generate_lake(lake, demo.START, first + 2, setup.customers, setup.terminals,
                              seed=setup.seed, defect_rate=setup.defect_rate, change=change)
    env = isolated_environment(home, lake.root)
    extra = {step: parse_step_args(value) for step, value in demo.DEMO_STEP_ARGS.items()}

    timings: dict[str, dict[str, float]] = {}
    with open(home / "steps.log", "w") as logfile:
        for day in days:
            ctx = RunContext(day, f"bench-{day}", lake.root, extra_args=extra)
            steps = ("clean", "features", "train", "promote") + (("score",) if day == days[1]
                                                                 else ())
            timings[day] = {name: step_seconds(name, ctx, env, logfile) for name in steps}
        tuning_ctx = RunContext(days[1], f"bench-{days[1]}-tune", lake.root,
                                extra_args={**extra, "train": ("--tune",)})
        tune_s = step_seconds("train", tuning_ctx, env, logfile)
    decision = storage.read_json(lake.run_summary("promote", f"bench-{days[1]}"))
    paths = {name: storage.read_json(lake.run_summary("train", name))["path"]
             for name in (f"bench-{days[1]}", f"bench-{days[1]}-tune")}
    daily = timings[days[1]]
    results = {
        "lake_transactions": generated["transactions"],
        "first_day": days[0],
        "daily_day": days[1],
        "first_champion_train_s": round(timings[days[0]]["train"], 1),
        "first_champion_promote_s": round(timings[days[0]]["promote"], 1),
        "train_s": round(daily["train"], 1),
        "promote_s": round(daily["promote"], 1),
        "score_s": round(daily["score"], 1),
        "train_path": paths[f"bench-{days[1]}"],
        "tuning_train_s": round(tune_s, 1),
        "tuning_path": paths[f"bench-{days[1]}-tune"],
        "refit_vs_tuning": round(daily["train"] / tune_s, 2),
        "refit_vs_tuning_bar": REFIT_TO_TUNE_BAR,
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
