"""The handbook's transaction simulator, vectorised with numpy and run one day at a time.

Le Borgne, Bontempi et al., *Reproducible Machine Learning for Credit Card Fraud Detection*,
chapter 3 "Transaction data simulator": customers and terminals on a 100 x 100 grid, each
customer uses the terminals within a radius, makes Poisson(mean_nb_tx_per_day) transactions a
day with Normal(mean, mean/2) amounts around noon, and three fraud scenarios label them.

The handbook builds the whole table and then labels it. Here each day is simulated, labelled and
handed over before the next one starts; the two scenarios that span days keep their compromise
windows (a few ids per day) in memory, so memory stays at one day of transactions. Where the
streaming order forces a difference from the handbook it is small and documented in
docs/data.md ("Differences from the handbook").

Every random draw comes from a generator seeded with (seed, stream, day), so a day's output
depends only on the seed, the parameters and the days before it: the same seed gives the same
days, and a longer run starts with exactly the days of a shorter one.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from fraudops.core.rawformat import DAY_SECONDS

GRID_SIZE = 100.0
TIME_MEAN_SECONDS = DAY_SECONDS / 2
TIME_STD_SECONDS = 20_000

SCENARIO_1_MIN_CENTS = 22_000  # amount > 220 is fraud
SCENARIO_2_TERMINALS_PER_DAY = 2
SCENARIO_2_WINDOW_DAYS = 28
SCENARIO_3_CUSTOMERS_PER_DAY = 3
SCENARIO_3_WINDOW_DAYS = 14
SCENARIO_3_SHARE = 1 / 3
SCENARIO_3_FACTOR = 5

# Independent random streams: (seed, stream[, day]) seeds each.
STREAM_CUSTOMERS, STREAM_TERMINALS, STREAM_TRANSACTIONS, STREAM_FRAUD = 0, 1, 2, 3
STREAM_CHANGE = 4  # the change of the world's own draws: the days before it stay as they were


def rng_for(seed: int, stream: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *more])


@dataclass(frozen=True)
class WorldChange:
    """A change in the world from day ``day`` (index from the first day) on; off unless given.

    Two things change at once, as when a fraud ring starts working a busy season:

    - customers shop more often: each one's mean number of transactions a day is multiplied
      by ``pace_factor`` (the count features move, which the drift report should see);
    - fraudsters use compromised cards differently: besides scenario 3's inflated amounts,
      every open scenario-3 window adds Poisson(``testing_tx_per_day``) small "card-testing"
      transactions a day (amounts uniform in ``testing_cents``, times of day uniform in
      ``testing_seconds``, at night) on one of the card's usual terminals, all fraud and
      labelled scenario 3 (the raw format knows scenarios 0 to 3 only).

    A model trained before the change has seen no fraud of that shape: small amounts at night
    look like the most ordinary transactions it knows.
    """

    day: int
    pace_factor: float = 1.5
    testing_tx_per_day: float = 3.0
    testing_cents: tuple[int, int] = (100, 600)
    testing_seconds: tuple[int, int] = (3600, 5 * 3600)

    def __post_init__(self) -> None:
        if self.day < 0 or not self.pace_factor > 0 or self.testing_tx_per_day < 0:
            raise ValueError("change day must be >= 0, pace factor > 0, testing rate >= 0")
        if not 0 < self.testing_cents[0] <= self.testing_cents[1]:
            raise ValueError("testing amounts must be positive, low <= high")
        if not 0 <= self.testing_seconds[0] <= self.testing_seconds[1] <= DAY_SECONDS - 1:
            raise ValueError("testing times must lie within the day")

    def active(self, day_index: int) -> bool:
        return day_index >= self.day


@dataclass(frozen=True)
class SimulationParams:
    start_date: dt.date = dt.date(2018, 4, 1)
    days: int = 183
    customers: int = 5_000
    terminals: int = 10_000
    radius: float = 5.0
    seed: int = 0
    change: WorldChange | None = None  # off: the handbook's steady world

    def __post_init__(self) -> None:
        if isinstance(self.start_date, str):
            object.__setattr__(self, "start_date", dt.date.fromisoformat(self.start_date))
        if self.days < 0 or self.customers < 1 or self.terminals < 1:
            raise ValueError("days must be >= 0, customers and terminals >= 1")
        if not self.radius > 0:
            raise ValueError("radius must be positive")

    def date(self, day_index: int) -> dt.date:
        return self.start_date + dt.timedelta(days=day_index)


@dataclass(frozen=True)
class Profiles:
    mean_amount: np.ndarray  # per customer; the amount's std is half of it
    mean_nb_tx_per_day: np.ndarray  # per customer
    customer_xy: np.ndarray  # (customers, 2)
    terminal_xy: np.ndarray  # (terminals, 2)
    # CSR: customer c may use terminal_ids[terminal_offsets[c]:terminal_offsets[c + 1]].
    terminal_offsets: np.ndarray
    terminal_ids: np.ndarray

    @property
    def n_customers(self) -> int:
        return len(self.mean_amount)

    @property
    def n_terminals(self) -> int:
        return len(self.terminal_xy)

    @property
    def terminals_per_customer(self) -> np.ndarray:
        return np.diff(self.terminal_offsets)


def make_profiles(params: SimulationParams) -> Profiles:
    customers = rng_for(params.seed, STREAM_CUSTOMERS)
    customer_xy = customers.uniform(0, GRID_SIZE, (params.customers, 2))
    mean_amount = customers.uniform(5, 100, params.customers)
    mean_nb_tx_per_day = customers.uniform(0, 4, params.customers)
    terminal_xy = rng_for(params.seed, STREAM_TERMINALS).uniform(
        0, GRID_SIZE, (params.terminals, 2)
    )
    offsets, ids = terminals_within_radius(customer_xy, terminal_xy, params.radius)
    return Profiles(mean_amount, mean_nb_tx_per_day, customer_xy, terminal_xy, offsets, ids)


def terminals_within_radius(
    customer_xy: np.ndarray, terminal_xy: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each customer, the terminals at a distance < radius, as CSR (offsets, sorted ids).

    Terminals are bucketed in square cells of side ``radius``, so a terminal in range lies in
    the customer's cell or one of its 8 neighbours: only those candidate pairs are measured.
    """
    n_side = int(GRID_SIZE // radius) + 1
    terminal_cell = np.minimum((terminal_xy // radius).astype(np.int64), n_side - 1)
    terminal_key = terminal_cell[:, 0] * n_side + terminal_cell[:, 1]
    by_cell = np.argsort(terminal_key, kind="stable")
    sorted_keys = terminal_key[by_cell]
    customer_cell = np.minimum((customer_xy // radius).astype(np.int64), n_side - 1)

    pair_customers, pair_terminals = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            cx, cy = customer_cell[:, 0] + dx, customer_cell[:, 1] + dy
            inside = (cx >= 0) & (cy >= 0) & (cx < n_side) & (cy < n_side)
            key = cx * n_side + cy
            lo = np.searchsorted(sorted_keys, key, "left")
            count = np.where(inside, np.searchsorted(sorted_keys, key, "right") - lo, 0)
            customers, rank = expand(count)
            pair_customers.append(customers)
            pair_terminals.append(by_cell[lo[customers] + rank])
    customers = np.concatenate(pair_customers)
    terminals = np.concatenate(pair_terminals)
    distance = np.sqrt(np.sum(np.square(customer_xy[customers] - terminal_xy[terminals]), axis=1))
    near = distance < radius
    customers, terminals = customers[near], terminals[near]
    order = np.lexsort((terminals, customers))
    counts = np.bincount(customers, minlength=len(customer_xy))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return offsets, terminals[order].astype(np.int64)


def expand(count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, rank) of every item when owner i has count[i] items: [0,0,1,...], [0,1,0,...]."""
    owner = np.repeat(np.arange(len(count)), count)
    first = np.cumsum(count) - count
    return owner, np.arange(len(owner)) - first[owner]


@dataclass
class Day:
    """One simulated day, sorted by time; amounts in integer cents (exact under x5)."""

    index: int
    date: dt.date
    transaction_id: np.ndarray
    seconds_of_day: np.ndarray
    customer_id: np.ndarray
    terminal_id: np.ndarray
    amount_cents: np.ndarray
    fraud_scenario: np.ndarray  # 0 = genuine, else the scenario that made it fraud
    # Ground truth of scenarios 2 and 3: what was compromised on this day (windows open here).
    terminals_compromised: np.ndarray
    customers_compromised: np.ndarray

    @property
    def size(self) -> int:
        return len(self.transaction_id)

    @property
    def tx_time_seconds(self) -> np.ndarray:
        return self.seconds_of_day + self.index * DAY_SECONDS

    @property
    def tx_fraud(self) -> np.ndarray:
        return (self.fraud_scenario > 0).astype(np.int8)


def draw_transactions(
    profiles: Profiles, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One day's (seconds_of_day, customer, terminal, amount_cents), in customer order."""
    counts = rng.poisson(profiles.mean_nb_tx_per_day)
    customer = np.repeat(np.arange(profiles.n_customers), counts)
    # The handbook truncates the time to whole seconds and drops those outside (0, 86400).
    seconds = np.trunc(rng.normal(TIME_MEAN_SECONDS, TIME_STD_SECONDS, len(customer)))
    usable = profiles.terminals_per_customer[customer]
    keep = (seconds > 0) & (seconds < DAY_SECONDS) & (usable > 0)
    customer, seconds, usable = customer[keep], seconds[keep].astype(np.int64), usable[keep]

    mean = profiles.mean_amount[customer]
    amount = rng.normal(mean, mean / 2)
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    # Rounded to cents like the handbook, which yields a few 0.00: valid (zero-amount)
    # transactions, kept as they are.
    cents = np.rint(amount * 100).astype(np.int64)

    pick = profiles.terminal_offsets[customer] + rng.integers(0, usable)
    return seconds, customer, profiles.terminal_ids[pick], cents


class FraudScenarios:
    """The handbook's add_frauds, one day at a time, with later scenarios overriding earlier.

    1. amount > 220 is fraud;
    2. each day 2 terminals are compromised: all their transactions of that day and the next
       27 are fraud;
    3. each day 3 customers are compromised: over that day and the next 13, a third of their
       transactions are fraud with their amount multiplied by 5.
    """

    def __init__(self, profiles: Profiles) -> None:
        self.profiles = profiles
        self.terminal_windows: deque[tuple[int, np.ndarray]] = deque()
        self.customer_windows: deque[tuple[int, np.ndarray]] = deque()

    def _open_windows(self, day_index: int, rng: np.random.Generator) -> None:
        n_terminals, n_customers = self.profiles.n_terminals, self.profiles.n_customers
        self.terminal_windows.append(
            (day_index, rng.choice(n_terminals, min(SCENARIO_2_TERMINALS_PER_DAY, n_terminals),
                                   replace=False))
        )
        self.customer_windows.append(
            (day_index, rng.choice(n_customers, min(SCENARIO_3_CUSTOMERS_PER_DAY, n_customers),
                                   replace=False))
        )
        while self.terminal_windows[0][0] <= day_index - SCENARIO_2_WINDOW_DAYS:
            self.terminal_windows.popleft()
        while self.customer_windows[0][0] <= day_index - SCENARIO_3_WINDOW_DAYS:
            self.customer_windows.popleft()

    def compromised_terminals(self) -> np.ndarray:
        return np.concatenate([ids for _, ids in self.terminal_windows])

    def compromised_customers(self) -> np.ndarray:
        """One entry per open window: a customer compromised twice appears twice."""
        return np.concatenate([ids for _, ids in self.customer_windows])

    def label(
        self,
        day_index: int,
        rng: np.random.Generator,
        customer: np.ndarray,
        terminal: np.ndarray,
        cents: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(amount_cents, fraud_scenario) of a day's transactions."""
        self._open_windows(day_index, rng)
        scenario = np.where(cents > SCENARIO_1_MIN_CENTS, 1, 0).astype(np.int8)
        scenario[np.isin(terminal, self.compromised_terminals())] = 2
        # Each open window of the transaction's customer picks it with probability 1/3; the
        # handbook picks a third of the window's transactions, also once per window.
        windows = np.bincount(self.compromised_customers(), minlength=self.profiles.n_customers)
        exposed = np.flatnonzero(windows[customer])
        picks = rng.binomial(windows[customer[exposed]], SCENARIO_3_SHARE)
        hit, times = exposed[picks > 0], picks[picks > 0]
        cents = cents.copy()
        cents[hit] *= SCENARIO_3_FACTOR**times
        scenario[hit] = 3
        return cents, scenario


def card_testing(profiles: Profiles, compromised: np.ndarray, change: WorldChange,
                 rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The day's card-testing frauds of the compromised cards (one entry per open window):
    (seconds_of_day, customer, terminal, amount_cents, fraud_scenario)."""
    usable = profiles.terminals_per_customer[compromised]
    cards = compromised[usable > 0]
    counts = rng.poisson(change.testing_tx_per_day, len(cards))
    customer = np.repeat(cards, counts)
    seconds = rng.integers(change.testing_seconds[0], change.testing_seconds[1] + 1,
                           len(customer)).astype(np.int64)
    cents = rng.integers(change.testing_cents[0], change.testing_cents[1] + 1,
                         len(customer)).astype(np.int64)
    pick = profiles.terminal_offsets[customer] + rng.integers(
        0, profiles.terminals_per_customer[customer])
    scenario = np.full(len(customer), 3, dtype=np.int8)
    return seconds, customer, profiles.terminal_ids[pick], cents, scenario


def simulate(params: SimulationParams, profiles: Profiles | None = None) -> Iterator[Day]:
    """The simulation's days in order; transaction ids run on across days from 0."""
    profiles = profiles or make_profiles(params)
    frauds = FraudScenarios(profiles)
    change = params.change
    changed_profiles = None
    if change is not None:
        changed_profiles = replace(
            profiles, mean_nb_tx_per_day=profiles.mean_nb_tx_per_day * change.pace_factor)
    next_id = 0
    for index in range(params.days):
        changed = change is not None and change.active(index)
        seconds, customer, terminal, cents = draw_transactions(
            changed_profiles if changed else profiles,
            rng_for(params.seed, STREAM_TRANSACTIONS, index),
        )
        cents, scenario = frauds.label(
            index, rng_for(params.seed, STREAM_FRAUD, index), customer, terminal, cents
        )
        if changed:
            testing = card_testing(profiles, frauds.compromised_customers(), change,
                                   rng_for(params.seed, STREAM_CHANGE, index))
            seconds, customer, terminal, cents, scenario = (
                np.concatenate([a, b]) for a, b in zip(
                    (seconds, customer, terminal, cents, scenario), testing))
        order = np.argsort(seconds, kind="stable")
        yield Day(
            index=index,
            date=params.date(index),
            transaction_id=np.arange(next_id, next_id + len(order), dtype=np.int64),
            seconds_of_day=seconds[order],
            customer_id=customer[order],
            terminal_id=terminal[order],
            amount_cents=cents[order],
            fraud_scenario=scenario[order],
            terminals_compromised=frauds.terminal_windows[-1][1],
            customers_compromised=frauds.customer_windows[-1][1],
        )
        next_id += len(order)
