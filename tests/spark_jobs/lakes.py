"""Lakes the model tests share: built once per session, copied where a test writes.

The warmed-up lake (49 generated days, cleaned, both marts) is what the model loop, its failure
paths and the matured-label test start from; building it costs a clean and a features run.
The session fixture ``warmed_lake`` (tests/spark_jobs/conftest.py) builds it once per
pytest-xdist worker; nothing writes to it: ``copy_of`` gives a test or a module its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fraudops.core.lake import Lake
from fraudops.simulator.generate import generate_lake
from spark_jobs import clean, features
from spark_jobs.datasets import clean_days


def warmed_up_lake(spark, folder: Path) -> Lake:
    """49 generated days, cleaned and with both marts: a run as of 2018-05-19 (the model tests'
    AS_OF) has its windows past the warm-up."""
    lake = Lake(str(folder / "lake"))
    generate_lake(lake, "2018-04-01", 49, customers=600, terminals=1200, seed=3)
    clean.run(lake, None, "setup", spark)
    features.run(spark, lake, clean_days(lake))
    return lake


def copy_of(lake: Lake, folder: Path) -> Lake:
    """A copy of ``lake`` in ``folder``, file times kept (the manifest compares them)."""
    copy = Lake(str(folder / "lake"))
    shutil.copytree(lake.root, copy.root)
    return copy
