from __future__ import annotations

import time

from fraudops.core import laps


def test_laps_add_up_the_time_between_marks():
    laps.lap("start")  # since the process started
    assert laps.laps()["start"] > 0
    time.sleep(0.05)
    assert laps.lap("sleep") >= 0.05
    laps.lap("sleep")
    assert laps.laps()["sleep"] >= 0.05
