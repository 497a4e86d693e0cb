"""The production training profile (profile.yaml beside this module), read once per job."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

PROFILE_PATH = Path(__file__).with_name("profile.yaml")


@dataclass(frozen=True)
class Profile:
    version: int
    seed: int
    train_days: int
    delay_days: int
    test_days: int
    tune_every_days: int
    psi_alert: float
    max_ap_drop: float
    folds: int
    fold_train_days: int
    fold_assess_days: int
    grid: dict[str, dict[str, list]]
    promotion: dict[str, float]  # registry.Policy's fields
    text: str  # the file as read, logged with every run

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]


def load(path: Path = PROFILE_PATH) -> Profile:
    text = path.read_text()
    raw = yaml.safe_load(text)
    windows, tuning = raw["windows"], raw["tuning"]
    return Profile(
        version=int(raw["version"]), seed=int(raw["seed"]),
        train_days=int(windows["train_days"]), delay_days=int(windows["delay_days"]),
        test_days=int(windows["test_days"]), tune_every_days=int(tuning["every_days"]),
        psi_alert=float(tuning["psi_alert"]), max_ap_drop=float(tuning["max_ap_drop"]),
        folds=int(tuning["folds"]), fold_train_days=int(tuning["fold_train_days"]),
        fold_assess_days=int(tuning["fold_assess_days"]),
        grid={family: dict(grid) for family, grid in tuning["grid"].items()},
        promotion=dict(raw["promotion"]), text=text,
    )


PRODUCTION = load()
