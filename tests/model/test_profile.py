"""The production profile: the one source of its settings, and a loader that refuses keys it
does not know (a misspelt setting would otherwise be a default silently kept)."""

from __future__ import annotations

from dataclasses import fields

import pytest
import yaml

from fraudops.model import evaluation, profile, registry
from fraudops.model.profile import PRODUCTION, PROFILE_PATH


def write(tmp_path, change) -> object:
    raw = yaml.safe_load(PROFILE_PATH.read_text())
    change(raw)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_file_loads_with_every_key_known():
    assert profile.unknown_keys(yaml.safe_load(PROFILE_PATH.read_text())) == []
    assert profile.load(PROFILE_PATH) == PRODUCTION


@pytest.mark.parametrize("change, named", [
    (lambda raw: raw.update(topk=50), "'topk'"),
    (lambda raw: raw["tuning"].update(psi_alrt=0.3), "'tuning.psi_alrt'"),
    (lambda raw: raw["windows"].update(train=14), "'windows.train'"),
    (lambda raw: raw["promotion"].update(margin=0.1), "'promotion.margin'"),
])
def test_an_unknown_key_is_refused_by_its_name(tmp_path, change, named):
    with pytest.raises(ValueError, match=f"unknown key {named}"):
        profile.load(write(tmp_path, change))


def test_one_label_delay_for_the_features_and_the_decisions():
    from fraudops.core import columns
    from spark_jobs import train, windows
    from spark_jobs.schema import LABEL_DELAY_DAYS

    assert PRODUCTION.label_delay_days == 7
    assert columns.LABEL_DELAY_DAYS == LABEL_DELAY_DAYS == PRODUCTION.label_delay_days
    assert windows.TERMINAL.delay_days == PRODUCTION.label_delay_days
    assert train.TrainConfig().delay_days == PRODUCTION.label_delay_days
    assert "delay_days" not in profile.SECTIONS["windows"]  # the split's gap is the same fact


def test_a_label_delay_the_features_do_not_use_is_refused(tmp_path):
    path = write(tmp_path, lambda raw: raw.update(label_delay_days=6))
    with pytest.raises(ValueError, match="label_delay_days 6 is not the delay the terminal"):
        profile.load(path)


def test_the_promotion_keys_are_the_policys_fields():
    assert profile.SECTIONS["promotion"] == {f.name for f in fields(registry.Policy)}
    assert registry.Policy.from_profile(PRODUCTION) == registry.Policy(**PRODUCTION.promotion)


def test_top_k_and_the_psi_alert_level_come_from_the_profile():
    assert registry.TOP_K == evaluation.TOP_K == PRODUCTION.top_k
    assert registry.CARD_PRECISION == evaluation.CARD_PRECISION == PRODUCTION.card_precision \
        == f"card_precision_at_{PRODUCTION.top_k}"
    from fraudops.model import drift

    assert PRODUCTION.psi_alert == drift.PSI_ALERT
