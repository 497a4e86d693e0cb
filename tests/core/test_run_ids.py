"""Run ids: one safe id per original id (unique_id), and the command line takes only safe ones
(issue 45)."""

from __future__ import annotations

import pytest

from fraudops.core import cli
from fraudops.core.steps import is_safe_id, unique_id


@pytest.mark.parametrize("a, b", [
    ("Retrain.1", "retrain_1"),
    ("scheduled__2018-04-02T00:00:00+00:00", "scheduled-2018-04-02t00-00-00-00-00"),
    ("x" * 70, "x" * 71),  # cut at the same place
    ("manual__a", "manual_a"),
])
def test_ids_that_map_alike_stay_apart(a, b):
    assert unique_id(a) != unique_id(b)
    assert is_safe_id(unique_id(a)) and is_safe_id(unique_id(b))


@pytest.mark.parametrize("value", ["r1", "manual-20260101t000000", "a" * 63, "x-1"])
def test_a_safe_id_is_kept(value):
    assert unique_id(value) == value


@pytest.mark.parametrize("value", ["../../x", "../manifest", "a/b", "R1", "-a", "", "a" * 64])
def test_the_command_line_refuses_an_unsafe_run_id(value, capsys):
    with pytest.raises(SystemExit):
        cli.parser("test").parse_args([f"--run-id={value}"])
    assert "not a safe run id" in capsys.readouterr().err
