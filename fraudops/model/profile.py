"""The production training profile (profile.yaml beside this module), read once per job.

``load`` refuses a key it does not know, naming it: a misspelt setting is an error, not a
default silently kept; and a label delay other than the one the features are built with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from fraudops.core.columns import LABEL_DELAY_DAYS

PROFILE_PATH = Path(__file__).with_name("profile.yaml")
# The keys the file holds: top level, then the keys of each section (promotion: registry.Policy's
# fields, which tests/model/test_profile.py checks).
SECTIONS = {
    "windows": {"train_days", "test_days"},
    "promotion": {"confidence", "min_days", "cp_margin", "non_inferiority_margin",
                  "max_champion_age_days"},
    "tuning": {"every_days", "psi_alert", "max_ap_drop", "folds", "fold_train_days",
               "fold_assess_days", "grid"},
}
TOP_LEVEL = {"version", "seed", "top_k", "label_delay_days", *SECTIONS}


def card_precision_metric(k: int) -> str:
    """The name train, promote and the report give card precision@k."""
    return f"card_precision_at_{k}"


@dataclass(frozen=True)
class Profile:
    version: int
    seed: int
    top_k: int
    label_delay_days: int  # labels are known this many days after their transaction
    train_days: int
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
    def card_precision(self) -> str:
        """The metric name of card precision at the profile's top_k."""
        return card_precision_metric(self.top_k)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]


def unknown_keys(raw: dict) -> list[str]:
    """The keys of a parsed profile that ``load`` does not know (section.key for a section's)."""
    unknown = [key for key in raw if key not in TOP_LEVEL]
    for section, known in SECTIONS.items():
        unknown += [f"{section}.{key}" for key in raw.get(section) or {} if key not in known]
    return unknown


def load(path: Path = PROFILE_PATH) -> Profile:
    text = path.read_text()
    raw = yaml.safe_load(text)
    if unknown := unknown_keys(raw):
        raise ValueError(f"{path}: unknown key {', '.join(map(repr, unknown))} (known: "
                         f"{', '.join(sorted(TOP_LEVEL))}; sections: profile.SECTIONS)")
    if raw["label_delay_days"] != LABEL_DELAY_DAYS:
        raise ValueError(f"{path}: label_delay_days {raw['label_delay_days']} is not the delay "
                         f"the terminal features are built with, fraudops.core.columns."
                         f"LABEL_DELAY_DAYS = {LABEL_DELAY_DAYS}: one fact, change both and "
                         "rebuild the marts")
    windows, tuning = raw["windows"], raw["tuning"]
    return Profile(
        version=int(raw["version"]), seed=int(raw["seed"]), top_k=int(raw["top_k"]),
        label_delay_days=int(raw["label_delay_days"]), train_days=int(windows["train_days"]),
        test_days=int(windows["test_days"]), tune_every_days=int(tuning["every_days"]),
        psi_alert=float(tuning["psi_alert"]), max_ap_drop=float(tuning["max_ap_drop"]),
        folds=int(tuning["folds"]), fold_train_days=int(tuning["fold_train_days"]),
        fold_assess_days=int(tuning["fold_assess_days"]),
        grid={family: dict(grid) for family, grid in tuning["grid"].items()},
        promotion=dict(raw["promotion"]), text=text,
    )


PRODUCTION = load()
