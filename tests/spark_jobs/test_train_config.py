"""train's command line: each TrainConfig field is an option of its name (no JVM)."""

from __future__ import annotations

from dataclasses import asdict, fields

from spark_jobs import train


def test_every_field_is_an_option_of_its_name_and_reaches_the_config():
    args = train.arguments().parse_args([
        "--as-of", "2018-05-01", "--train-days", "28", "--delay-days", "6", "--test-days", "5",
        "--folds", "2", "--fold-train-days", "9", "--fold-assess-days", "3", "--grid", "small",
        "--seed", "11", "--tune", "--tune-every-days", "4"])
    assert asdict(train.config_of(args)) == {
        "train_days": 28, "delay_days": 6, "test_days": 5, "folds": 2, "fold_train_days": 9,
        "fold_assess_days": 3, "grid": "small", "seed": 11, "path": "tune", "tune_every_days": 4}


def test_the_defaults_are_the_configs():
    args = train.arguments().parse_args(["--as-of", "2018-05-01"])
    assert train.config_of(args) == train.TrainConfig()
    assert {f.name for f in fields(train.TrainConfig)} <= set(vars(args))
