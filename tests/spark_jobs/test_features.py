"""The feature marts: equal to a plain pandas reference, causal, incremental, bounded reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudops.core import storage
from fraudops.core.lake import Lake, shift
from spark_jobs import features, window_sums, windows
from spark_jobs.datasets import clean_days, read_partitions
from spark_jobs.schema import CLEAN_SCHEMA, MODEL_FEATURES, WINDOWS_DAYS

DAY = 86_400
START = pd.Timestamp("2018-04-01")


def random_transactions(n=1500, days=50, customers=12, terminals=8, seed=7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, days * DAY, n))
    seconds[5] = seconds[4]  # a tie in time must not break anything
    return _frame(seconds, rng.integers(0, customers, n), rng.integers(0, terminals, n),
                  rng.uniform(1, 200, n).round(2), rng.random(n) < 0.15)


def tied_transactions(n=1500, days=50, customers=12, terminals=8, seed=7,
                      groups=40) -> pd.DataFrame:
    """Random transactions with ties: groups of 2 to 5 transactions of one customer at one
    terminal in the same second, their ids scattered (not consecutive, not in row order), and
    some groups again at that second 1, 7, 8, 14, 30 or 37 days later, the windows' edges. The
    rows come in shuffled order."""
    tx = random_transactions(n, days, customers, terminals, seed)
    rng = np.random.default_rng(seed + 1)
    seconds = tx["tx_time_seconds"].to_numpy().copy()
    customer, terminal = tx["customer_id"].to_numpy().copy(), tx["terminal_id"].to_numpy().copy()
    for _ in range(groups):
        anchor, *members = rng.choice(n, size=rng.integers(3, 7), replace=False)
        lag = rng.choice([0, 0, 1, 7, 8, 14, 30, 37])
        at = seconds[anchor] + lag * DAY
        if at >= days * DAY:
            continue
        seconds[members] = at
        customer[members], terminal[members] = customer[anchor], terminal[anchor]
    tied = _frame(seconds, customer, terminal, tx["tx_amount"].to_numpy(),
                  tx["tx_fraud"].to_numpy() == 1)
    return tied.sample(frac=1, random_state=seed).reset_index(drop=True)


def _frame(seconds, customer, terminal, amount, fraud) -> pd.DataFrame:
    n = len(seconds)
    ts = START + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame({
        "transaction_id": np.arange(n, dtype="int64"),
        "tx_datetime": ts.astype("datetime64[us]"),
        "customer_id": customer.astype("int64"),
        "terminal_id": terminal.astype("int64"),
        "tx_amount": amount,
        "tx_time_seconds": seconds.astype("int64"),
        "tx_time_days": (seconds // DAY).astype("int32"),
        "tx_fraud": fraud.astype("int32"),
        "tx_fraud_scenario": np.zeros(n, dtype="int32"),
        "tx_date": ts.date,
    })


def write_clean(spark, lake: Lake, tx: pd.DataFrame) -> None:
    """Put transactions in the clean table and its day index, as the cleaning job would."""
    df = spark.createDataFrame(tx, schema=CLEAN_SCHEMA)
    df.write.mode("overwrite").partitionBy("tx_date").parquet(lake.clean)
    days = {str(d): {"rows": 0, "min_id": 0, "max_id": 0} for d in sorted(set(tx["tx_date"]))}
    storage.write_json(lake.clean_days, days)


def reference(tx: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The marts computed the plain way: for each transaction, look at every other one.

    A window holds what came before the transaction and the transaction itself: earlier, or in
    the same second with a lower id (the handbook rolls over rows sorted by time, then id).
    Rows in transaction id order."""
    tx = tx.sort_values("transaction_id").reset_index(drop=True)
    t = tx["tx_datetime"].astype("int64") // 10**6  # epoch seconds
    ids = tx["transaction_id"]
    cust_rows, term_rows = [], []
    for i in range(len(tx)):
        me = tx.iloc[i]
        came_before = (t < t[i]) | ((t == t[i]) & (ids <= ids[i]))
        same_c = tx[(tx["customer_id"] == me["customer_id"]) & came_before]
        tc = t[same_c.index]
        c = {"transaction_id": me["transaction_id"],
             "tx_during_weekend": int(me["tx_datetime"].dayofweek >= 5),
             "tx_during_night": int(me["tx_datetime"].hour <= 6)}
        for w in WINDOWS_DAYS:
            inside = same_c[tc > t[i] - w * DAY]
            c[f"customer_id_nb_tx_{w}day_window"] = len(inside)
            c[f"customer_id_avg_amount_{w}day_window"] = inside["tx_amount"].mean()
        cust_rows.append(c)
        same_t = tx[(tx["terminal_id"] == me["terminal_id"]) & came_before]
        tt = t[same_t.index]
        d = {"transaction_id": me["transaction_id"]}
        for w in WINDOWS_DAYS:
            # The handbook's delayed window: its (7 + w)-day window less its 7-day window.
            inside = same_t[(tt > t[i] - (7 + w) * DAY) & ~(tt > t[i] - 7 * DAY)]
            d[f"terminal_id_nb_tx_{w}day_window"] = len(inside)
            d[f"terminal_id_risk_{w}day_window"] = (
                inside["tx_fraud"].sum() / len(inside) if len(inside) else 0.0
            )
        term_rows.append(d)
    return pd.DataFrame(cust_rows), pd.DataFrame(term_rows)


def handbook(tx: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The marts as the handbook's own feature code builds them (chapter 3, "Baseline feature
    transformation"): pandas time-based rolling windows over each key's rows in time order,
    ties in transaction id order."""
    tx = tx.sort_values(["tx_datetime", "transaction_id"], kind="stable").set_index(
        "tx_datetime", drop=False)
    customer, terminal = [], []
    for _, rows in tx.groupby("customer_id", sort=False):
        out = rows[["transaction_id"]].copy()
        for w in WINDOWS_DAYS:
            window = rows["tx_amount"].rolling(f"{w}d")
            out[f"customer_id_nb_tx_{w}day_window"] = window.count()
            out[f"customer_id_avg_amount_{w}day_window"] = window.sum() / window.count()
        customer.append(out)
    for _, rows in tx.groupby("terminal_id", sort=False):
        out = rows[["transaction_id"]].copy()
        delay_fraud = rows["tx_fraud"].rolling("7d").sum()
        delay_count = rows["tx_fraud"].rolling("7d").count()
        for w in WINDOWS_DAYS:
            n_fraud = rows["tx_fraud"].rolling(f"{7 + w}d").sum() - delay_fraud
            n_tx = rows["tx_fraud"].rolling(f"{7 + w}d").count() - delay_count
            out[f"terminal_id_nb_tx_{w}day_window"] = n_tx
            out[f"terminal_id_risk_{w}day_window"] = (n_fraud / n_tx).fillna(0)
        terminal.append(out)

    def ordered(parts):
        return pd.concat(parts).sort_values("transaction_id").reset_index(drop=True)
    return ordered(customer), ordered(terminal)


def marts(lake: Lake) -> tuple[pd.DataFrame, pd.DataFrame]:
    def load(path):
        return pd.read_parquet(path).sort_values("transaction_id").reset_index(drop=True)
    return load(lake.customer_features), load(lake.terminal_features)


@pytest.fixture(scope="module")
def sample():
    return tied_transactions()


def test_the_sample_has_ties_and_the_reference_is_the_handbooks_rolling_windows(sample):
    """Several same-second transactions of one customer and one terminal, not in id order;
    the plain reference agrees with the handbook's own rolling-window code on them."""
    tied = sample[sample.duplicated(["tx_datetime", "customer_id", "terminal_id"], keep=False)]
    assert tied.groupby(["tx_datetime", "customer_id"]).size().ge(3).sum() >= 10
    assert not sample["transaction_id"].is_monotonic_increasing
    want_c, want_t = reference(sample)
    got_c, got_t = handbook(sample)
    pd.testing.assert_frame_equal(got_c, want_c[got_c.columns], check_dtype=False)
    pd.testing.assert_frame_equal(got_t, want_t[got_t.columns], check_dtype=False)


def test_marts_equal_pandas_reference_row_for_row(spark, lake, sample):
    write_clean(spark, lake, sample)
    features.run(spark, lake, sorted({str(d) for d in sample["tx_date"]}))
    customer, terminal = marts(lake)
    want_c, want_t = reference(sample)
    assert len(customer) == len(terminal) == len(sample)
    pd.testing.assert_frame_equal(customer[want_c.columns], want_c, check_dtype=False)
    pd.testing.assert_frame_equal(terminal[want_t.columns], want_t, check_dtype=False)


def test_the_marts_feature_columns_are_the_models_in_its_order():
    """The model reads the amount, then the marts' features in the order of ``MARTS``: the
    handbook's 15 columns, none twice. Reordering the marts or adding a feature to one of them
    would change what a registered model is fed."""
    mart_columns = [name for mart in windows.MARTS for name in mart.feature_names]
    assert ["tx_amount", *mart_columns] == MODEL_FEATURES
    assert len(set(MODEL_FEATURES)) == 15  # the handbook's features, none twice


def test_each_mart_is_written_with_the_schema_its_readers_pass(spark, lake, sample):
    """Readers open the marts with ``mart.schema`` (no inference): a column the job wrote under
    another name or type would read back as nulls, not fail."""
    write_clean(spark, lake, sample)
    features.run(spark, lake, sorted({str(d) for d in sample["tx_date"]}))
    for mart in windows.MARTS:
        written = spark.read.parquet(mart.path(lake))
        assert {(f.name, f.dataType) for f in written.schema} == {
            (f.name, f.dataType) for f in mart.schema}, mart.name


def test_marts_keep_each_transactions_key_and_time_and_flag_the_clock_edges(spark, lake):
    """The marts rebuild the time stamp from epoch seconds and the flags from the day and the
    seconds of the day: check them at the edges of the night and of the weekend."""
    tx = random_transactions(n=6, days=10, seed=5)
    edges = ["2018-04-06 23:59:59",  # Friday, not night
             "2018-04-07 00:00:00",  # Saturday, night
             "2018-04-07 06:59:59",  # Saturday, night
             "2018-04-08 07:00:00",  # Sunday, not night
             "2018-04-08 23:59:59",  # Sunday
             "2018-04-09 00:00:00"]  # Monday, night
    tx["tx_datetime"] = pd.to_datetime(edges).astype("datetime64[us]")
    tx["tx_date"] = tx["tx_datetime"].dt.date
    write_clean(spark, lake, tx)
    features.run(spark, lake, sorted({str(d) for d in tx["tx_date"]}))
    customer, terminal = marts(lake)
    for mart, key in ((customer, "customer_id"), (terminal, "terminal_id")):
        pd.testing.assert_frame_equal(
            mart[["transaction_id", key, "tx_datetime", "tx_date"]].astype({"tx_date": str}),
            tx[["transaction_id", key, "tx_datetime", "tx_date"]].astype({"tx_date": str}),
            check_dtype=False)
    assert customer["tx_during_weekend"].tolist() == [0, 1, 1, 1, 1, 0]
    assert customer["tx_during_night"].tolist() == [0, 1, 1, 0, 0, 1]


def test_ids_beyond_32_bits_give_the_reference_marts(spark, lake):
    """The window's presort packs key and time into one long: large ids must neither fail
    (ANSI overflow) nor change a feature, even where the packed value wraps."""
    tx = tied_transactions(n=300, days=20, seed=3, groups=10)
    tx["customer_id"] += 2**40
    tx["terminal_id"] = tx["terminal_id"] * 2**59 + 1
    write_clean(spark, lake, tx)
    features.run(spark, lake, sorted({str(d) for d in tx["tx_date"]}))
    customer, terminal = marts(lake)
    want_c, want_t = reference(tx)
    pd.testing.assert_frame_equal(customer[want_c.columns], want_c, check_dtype=False)
    pd.testing.assert_frame_equal(terminal[want_t.columns], want_t, check_dtype=False)


@pytest.mark.parametrize("mart", windows.MARTS, ids=lambda mart: mart.name)
def test_the_window_builds_each_running_sum_once(spark, mart):
    """Counts, means and ratios of one window share its running sums: two (count and value)
    at the windows' end and two at each window's start. Spark builds one aggregate per
    occurrence of a window expression, so a shared sum must reach the window only once."""
    spark.createDataFrame([], CLEAN_SCHEMA).transform(
        lambda clean: windows.full_mart(clean, mart)).createOrReplaceTempView("mart_plan")
    plan = spark.sql("EXPLAIN SELECT * FROM mart_plan").first()[0]
    assert plan.count("windowspecdefinition(") == 2 * (1 + len(WINDOWS_DAYS)), plan


@pytest.mark.parametrize("mart", windows.MARTS, ids=lambda mart: mart.name)
def test_ties_in_id_order_cost_no_shuffle_or_sort(spark, mart):
    """The frames that stop at the transaction order by (time, id); their window runs below
    the range frames' and its sort serves both: still one shuffle by key (and the rebalance by
    day before the write), the presort and the window's sort."""
    plan = windows.full_mart(spark.createDataFrame([], CLEAN_SCHEMA), mart) \
        ._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Exchange ") == 2 and plan.count("Sort [") == 2, plan
    assert plan.count("Window [") == (2 if mart.delay_days == 0 else 1), plan


def test_no_feature_depends_on_later_transactions_or_unknown_labels(spark, tmp_path, sample):
    """The future starts inside a group of same-second transactions: the group's later ids
    are the future of its earlier ones."""
    t, ids = sample["tx_datetime"], sample["transaction_id"]
    groups = sample.groupby(["tx_datetime", "customer_id", "terminal_id"])["transaction_id"]
    sizes = groups.transform("size")
    group = sample[(sizes >= 3) & (t > START + pd.Timedelta(days=25))].iloc[0]
    members = sorted(groups.get_group(
        (group["tx_datetime"], group["customer_id"], group["terminal_id"])))
    cutoff_t, cutoff_id = group["tx_datetime"], members[len(members) // 2 - 1]
    future = (t > cutoff_t) | ((t == cutoff_t) & (ids > cutoff_id))
    recent = (t > cutoff_t - pd.Timedelta(days=7)) & ~future
    base, changed = Lake(str(tmp_path / "a")), Lake(str(tmp_path / "b"))
    altered = sample.copy()
    altered.loc[future, "tx_amount"] *= 10           # the future changes completely
    altered.loc[future, "customer_id"] = 0
    altered.loc[future | recent, "tx_fraud"] = 1 - altered.loc[future | recent, "tx_fraud"]
    for lake, tx in ((base, sample), (changed, altered)):
        write_clean(spark, lake, tx)
        features.run(spark, lake, sorted({str(d) for d in tx["tx_date"]}))
    past = sample.loc[~future, "transaction_id"]
    assert set(members) & set(past) and set(members) - set(past)  # the group is cut in two
    for a, b in zip(marts(base), marts(changed)):
        keep_a, keep_b = a[a.transaction_id.isin(past)], b[b.transaction_id.isin(past)]
        pd.testing.assert_frame_equal(keep_a.drop(columns="customer_id", errors="ignore"),
                                      keep_b.drop(columns="customer_id", errors="ignore"))
    # ...and the check above can fail: the future really did change the future's features.
    assert not marts(base)[1].equals(marts(changed)[1])


def test_incremental_days_equal_a_full_recompute_and_rerun_is_identical(spark, tmp_path, sample):
    full, daily = Lake(str(tmp_path / "full")), Lake(str(tmp_path / "daily"))
    days = sorted({str(d) for d in sample["tx_date"]})
    write_clean(spark, full, sample)
    features.run(spark, full, days)
    write_clean(spark, daily, sample)
    features.run(spark, daily, days[:40])
    for day in days[40:]:
        features.run(spark, daily, [day])
    for a, b in zip(marts(full), marts(daily)):
        pd.testing.assert_frame_equal(a, b)
    features.run(spark, daily, days[-3:])  # a re-run changes nothing
    for a, b in zip(marts(full), marts(daily)):
        pd.testing.assert_frame_equal(a, b)


def test_daily_steps_from_stored_sums_equal_a_full_recompute(spark, tmp_path, sample,
                                                             monkeypatch):
    """Day by day, as the DAG runs: each new day is computed from its edge days and the stored
    full-day sums; a day with no file falls back to the full look-back; a re-run is identical;
    a re-delivered past day recomputes and the next daily step starts from fresh sums."""
    full, daily = Lake(str(tmp_path / "full")), Lake(str(tmp_path / "daily"))
    days = sorted({str(d) for d in sample["tx_date"]})
    gap = days[45]  # no file that day
    for lake in (full, daily):
        write_clean(spark, lake, sample[sample["tx_date"].astype(str) != gap])
    index = storage.read_json(daily.clean_days)
    features.run(spark, full, sorted(index))

    read = []
    real = window_sums.read_partitions
    monkeypatch.setattr(window_sums, "read_partitions",
                        lambda spark, path, ds, schema, versions=None: read.append(ds)
                        or real(spark, path, ds, schema, versions))
    storage.write_json(daily.clean_days, {d: index[d] for d in index if d <= days[41]})
    features.run(spark, daily, [d for d in days if d <= days[41]])  # sums for days[42]
    steps = {}
    for day in days[42:]:
        if day == gap:
            continue
        storage.write_json(daily.clean_days, {d: index[d] for d in index if d <= day})
        read.clear()
        steps[day] = features.run(spark, daily, [day])["daily_step"]
        if steps[day]:  # the day itself, the 7-day delay's edge and the windows' lower edges
            want = {shift(day, -k) for k in (0, 1, 7, 30, 8, 14, 37)} & set(index)
            assert set().union(*read) == want and len(read) == 2, (day, read)
    assert steps == {d: d != days[46] for d in days[42:] if d != gap}
    for a, b in zip(marts(full), marts(daily)):
        pd.testing.assert_frame_equal(a, b)
    assert features.run(spark, daily, [days[-1]])["daily_step"]  # a re-run changes nothing
    for a, b in zip(marts(full), marts(daily)):
        pd.testing.assert_frame_equal(a, b)

    altered = sample[sample["tx_date"].astype(str) != gap].copy()
    moved = altered["tx_date"].astype(str) == days[30]
    altered.loc[moved, "tx_amount"] += 100
    altered.loc[moved, "tx_fraud"] = 1
    for lake in (full, daily):
        write_clean(spark, lake, altered)
    storage.write_json(daily.clean_days, {d: index[d] for d in index if d < days[-1]})
    features.run(spark, full, sorted(index))
    assert not features.run(spark, daily, [days[30]])["daily_step"]
    storage.write_json(daily.clean_days, index)
    assert features.run(spark, daily, [days[-1]])["daily_step"]
    for a, b in zip(marts(full), marts(daily)):
        pd.testing.assert_frame_equal(a, b)


def test_a_changed_day_drops_exactly_the_sums_that_cover_it(tmp_path):
    lake = Lake(str(tmp_path))
    kept = {}
    for changed in ([], ["2018-04-02"], ["2018-04-03"], ["2018-05-02"]):
        for mart in windows.MARTS:
            storage.write_json(lake.window_sums_index(mart.name),
                               {"days": ["2018-05-01", "2018-05-02"]})
        window_sums.forget_changed_sums(lake, changed)
        kept[tuple(changed)] = {tuple(window_sums.current_sums(lake, m)) for m in windows.MARTS}
    assert kept == {  # the sums of day k cover the 29 days up to k
        (): {("2018-05-01", "2018-05-02")},
        ("2018-04-02",): {("2018-05-01", "2018-05-02")},
        ("2018-04-03",): {("2018-05-02",)},
        ("2018-05-02",): {("2018-05-01",)},
    }


def test_reads_only_the_lookback_it_needs(spark, lake, sample, monkeypatch):
    write_clean(spark, lake, sample)
    calls = []
    real = features.read_clean
    monkeypatch.setattr(features, "read_clean",
                        lambda *a: calls.append(a[2:]) or real(*a))
    features.run(spark, lake, ["2018-05-15"])
    assert calls == [("2018-04-08", "2018-05-20")]  # 37 days back; the 5 later days move too


def test_a_local_session_lists_day_folders_without_a_spark_job(spark, lake, sample):
    """Spark lists more than 32 paths with a job of its own; a local session lists them on
    the driver (that job cost 1 to 2 s per 105-day read on 2 cores)."""
    write_clean(spark, lake, sample)
    days = clean_days(lake)
    assert len(days) > 32
    tracker = spark.sparkContext.statusTracker()
    jobs_before = set(tracker.getJobIdsForGroup())
    read_partitions(spark, lake.clean, days, CLEAN_SCHEMA)  # lists its folders eagerly
    assert set(tracker.getJobIdsForGroup()) == jobs_before


def test_days_to_recompute_follow_the_windows():
    avail = [f"2018-04-{d:02d}" for d in range(1, 31)] + [f"2018-05-{d:02d}" for d in range(1, 31)]
    assert features.days_to_recompute(["2018-05-30"], avail) == ["2018-05-30"]
    got = features.days_to_recompute(["2018-04-01"], avail)
    assert got[0] == "2018-04-01" and got[-1] == "2018-05-08" and len(got) == 38
    assert features.days_to_recompute([], avail) == []
