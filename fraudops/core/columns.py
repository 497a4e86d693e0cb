"""The names of the clean table's keys and of the feature marts' columns, without types.

One definition for both sides: the Spark jobs (spark_jobs.schema adds the Spark types and
builds the marts' schemas from these) and the model (fraudops.model.families picks its
features by these names), so that neither package imports the other to agree on a name.
"""

from __future__ import annotations

from fraudops.core.lake import PARTITION_COLUMN

WINDOWS_DAYS = (1, 7, 30)
# Days until a label is known; the terminal windows end this many days back. The same fact as
# the production profile's label_delay_days (decisions read only labels this old), which
# fraudops.model.profile refuses to load when it differs: the core cannot import the model's
# profile (fraudops.model imports the core), and the marts are built with this one.
LABEL_DELAY_DAYS = 7
WEEKEND_FLAG = "tx_during_weekend"
NIGHT_FLAG = "tx_during_night"
NIGHT_END_HOUR = 7  # the night is 00:00:00 to 06:59:59


def customer_nb_tx(w: int) -> str:
    return f"customer_id_nb_tx_{w}day_window"


def customer_avg_amount(w: int) -> str:
    return f"customer_id_avg_amount_{w}day_window"


def terminal_nb_tx(w: int) -> str:
    return f"terminal_id_nb_tx_{w}day_window"


def terminal_risk(w: int) -> str:
    return f"terminal_id_risk_{w}day_window"


# The marts' feature columns, in the order they are written.
CUSTOMER_FEATURES = [WEEKEND_FLAG, NIGHT_FLAG, *(customer_nb_tx(w) for w in WINDOWS_DAYS),
                     *(customer_avg_amount(w) for w in WINDOWS_DAYS)]
TERMINAL_FEATURES = [*(terminal_nb_tx(w) for w in WINDOWS_DAYS),
                     *(terminal_risk(w) for w in WINDOWS_DAYS)]
# What the model sees: the handbook's 15 features.
MODEL_FEATURES = ["tx_amount", *CUSTOMER_FEATURES, *TERMINAL_FEATURES]
KEYS = ["transaction_id", PARTITION_COLUMN]
