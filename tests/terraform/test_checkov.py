"""checkov over terraform/ with its Yandex Cloud checks: nothing may fail, and every skipped check
carries a written reason inline (#checkov:skip=CKV_YC_N: reason)."""

from __future__ import annotations

import pytest

from tests import checkov
from tests.terraform import hcl

pytestmark = checkov.requires_checkov
TARGET = "terraform"
# Checks that must have run, not merely been skipped: the reasons this configuration exists.
REQUIRED_PASSES = {
    "CKV_YC_1": "security group on the database",
    "CKV_YC_3": "bucket encryption",
    "CKV_YC_6": "no public IP on nodes",
    "CKV_YC_7": "master auto-upgrade",
    "CKV_YC_9": "KMS key rotation",
    "CKV_YC_10": "etcd encrypted with KMS",
    "CKV_YC_12": "no public IP on the database",
    "CKV_YC_14": "security group on the master",
    "CKV_YC_15": "security group on the nodes",
    "CKV_YC_16": "network policy",
    "CKV_YC_17": "no public bucket",
    "CKV_YC_23": "no elevated folder role",
}


@checkov.target(TARGET)
def terraform_folder(root):
    return hcl.TERRAFORM_DIR


@pytest.fixture
def report(checkov_reports) -> dict:
    return checkov.report(checkov_reports, TARGET, "terraform")


def test_no_failed_checks(report):
    failed = [(c["check_id"], c["resource"], c["check_name"])
              for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0


def test_every_skip_has_a_reason(report):
    for check in report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "").strip()
        assert len(reason) > 30, f"{check['check_id']} on {check['resource']}: explain the skip"


def test_the_yandex_checks_that_matter_ran_and_passed(report):
    passed = {c["check_id"] for c in report["results"]["passed_checks"]}
    missing = {check: why for check, why in REQUIRED_PASSES.items() if check not in passed}
    assert not missing
