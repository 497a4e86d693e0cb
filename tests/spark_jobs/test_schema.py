"""The marts' typed fields (spark_jobs.schema) carry the names of fraudops.core.columns, in its
order: the model and the jobs agree on every feature (no JVM)."""

from __future__ import annotations

from fraudops.core import columns
from spark_jobs import schema


def test_the_typed_fields_are_the_shared_names_in_order():
    assert [f.name for f in schema.CUSTOMER_FEATURE_FIELDS] == columns.CUSTOMER_FEATURES
    assert [f.name for f in schema.TERMINAL_FEATURE_FIELDS] == columns.TERMINAL_FEATURES
    assert len(columns.MODEL_FEATURES) == len(set(columns.MODEL_FEATURES)) == 15
    assert schema.MODEL_FEATURES is columns.MODEL_FEATURES
