"""Retention: do customers come back, how soon, how often, and for how much.

Pure functions over an orders table shaped like ``Store.table("orders")``: one row per
order with ``person_id``, ``order_id``, ``ts`` and ``value`` (and ``refunded``, the refunded
amount, for the refund rate). Activity retention takes events (``person_id``, ``ts``).
Exact definitions are in each docstring and in ``docs/retention.md``.

Conventions shared by every function here:

* A **customer** is a person with at least one order. An **order** is one row (one
  ``order_id``); refunded orders still count as orders, and ``value`` is the order's
  gross value (refunds are only used by the refund rate).
* **Periods** are calendar months (``"month"``) or ISO weeks starting on Monday
  (``"week"``), in UTC.
* ``as_of`` is the end of the data (default: the latest ``ts`` in the table). Periods that
  start after it have not been observed: they are missing (NaN), never zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from shopfunnel._time import naive_utc, naive_utc_timestamp
from shopfunnel.errors import ConfigError, InputError

Period = Literal["month", "week"]
_FREQ = {"month": "M", "week": "W-SUN"}

#: Buckets of :func:`time_between_orders_distribution`, in days: [lower, upper).
GAP_BUCKETS_DAYS: tuple[float, ...] = (0, 1, 7, 14, 30, 60, 90, 180, 365, np.inf)


def _require(frame: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise InputError(
            f"the {what} table has no column(s) {missing}: it needs {', '.join(cols)} "
            f"(as Store.table('orders') / Store.events() give)"
        )


def _period_index(ts: pd.Series, period: Period) -> pd.PeriodIndex:
    if period not in _FREQ:
        raise ConfigError(f"period={period!r} is not valid: use 'month' or 'week'")
    return pd.PeriodIndex(naive_utc(ts), freq=_FREQ[period])


def _cohorts(person: pd.Series, ts: pd.Series, period: Period, as_of: Any) -> pd.DataFrame:
    """Long cohort table from (person, time) activity rows."""
    if len(person) == 0:
        return pd.DataFrame(columns=COHORT_COLUMNS)
    periods = _period_index(ts, period)
    frame = pd.DataFrame({"person": person.to_numpy(), "p": periods.asi8})
    first = frame.groupby("person")["p"].transform("min")
    frame["cohort"] = first
    frame["offset"] = frame["p"] - first
    active = (
        frame.drop_duplicates(["person", "p"]).groupby(["cohort", "offset"]).size().rename("active")
    )
    sizes = frame.drop_duplicates("person").groupby("cohort").size().rename("cohort_size")
    end = naive_utc_timestamp(as_of) if as_of is not None else naive_utc(ts).max()
    return _long_table(active, sizes, period, end)


COHORT_COLUMNS = ["cohort", "period", "cohort_size", "active", "rate"]


def _long_table(active: pd.Series, sizes: pd.Series, period: Period, end: Any) -> pd.DataFrame:
    """The long cohort table from ``active`` (persons by cohort and offset, both as period
    ordinals) and ``sizes`` (persons by cohort), up to the period of ``end``."""
    last = pd.Period(end, freq=_FREQ[period]).ordinal
    rows = []
    for cohort, size in sizes.items():
        for offset in range(0, max(last - cohort, -1) + 1):
            n = int(active.get((cohort, offset), 0))
            rows.append((cohort, offset, int(size), n, n / size))
    out = pd.DataFrame(rows, columns=COHORT_COLUMNS)
    out["cohort"] = [
        pd.Period(ordinal=int(c), freq=_FREQ[period]).start_time.date().isoformat()
        for c in out["cohort"]
    ]
    return out


def cohort_retention(
    orders: pd.DataFrame, *, period: Period = "month", as_of: Any = None
) -> pd.DataFrame:
    """Purchase retention by cohort of first order, one row per (cohort, period).

    * ``cohort``: the first day of the month (or Monday of the ISO week) of the
      customer's first order.
    * ``period``: k = 0, 1, 2, … periods after the cohort's period.
    * ``cohort_size``: customers whose first order fell in the cohort.
    * ``active``: of those, customers with at least one order in period k. At k = 0 this
      is everyone (their first order), so ``rate`` is 1.
    * ``rate`` = ``active / cohort_size``.

    Rows exist only for periods that have started by ``as_of`` (the current period is
    included although it is not over); later periods are absent, never zero.
    """
    _require(orders, ("person_id", "ts"), "orders")
    return _cohorts(orders["person_id"], orders["ts"], period, as_of)


def activity_retention(
    events: pd.DataFrame, *, period: Period = "week", as_of: Any = None
) -> pd.DataFrame:
    """Activity retention by cohort of first visit: as :func:`cohort_retention`, but the
    cohort is the period of the person's first event of any kind and ``active`` counts
    persons with any event in period k."""
    _require(events, ("person_id", "ts"), "events")
    return _cohorts(events["person_id"], events["ts"], period, as_of)


def default_period(orders: pd.DataFrame) -> Period:
    """The cohort period every face uses unless asked otherwise: monthly cohorts when the
    orders span at least 120 days (four months), else weekly ones."""
    if len(orders) == 0:
        return "month"
    ts = pd.to_datetime(orders["ts"])
    return "month" if (ts.max() - ts.min()) >= pd.Timedelta(days=120) else "week"


@dataclass(frozen=True)
class StoreRetention:
    """A store's retention as every face shows it: the cohort ``period`` used, the
    :class:`RetentionSummary` (None without orders), the long cohort table of
    :func:`cohort_retention` and its :func:`cohort_matrix`."""

    period: Period
    summary: RetentionSummary | None
    cohorts: pd.DataFrame
    matrix: pd.DataFrame


def store_retention(
    store: Any, *, period: Period | None = None, orders: pd.DataFrame | None = None
) -> StoreRetention:
    """Retention of the store's orders: the one function the CLI, the report and the
    dashboard call, so they show the same numbers. ``period`` None picks
    :func:`default_period`; ``orders`` may be given when the caller already holds
    ``store.table("orders")``."""
    orders = store.table("orders") if orders is None else orders
    chosen: Period = default_period(orders) if period is None else period
    if chosen not in ("week", "month"):
        raise ConfigError(f"period={period!r} is not valid: use week or month")
    if orders.empty:
        return StoreRetention(chosen, None, pd.DataFrame(), pd.DataFrame())
    cohorts = cohort_retention(orders, period=chosen)
    return StoreRetention(chosen, retention_summary(orders), cohorts, cohort_matrix(cohorts))


def active_periods(store: Any, *, period: Period = "week") -> pd.DataFrame:
    """One row per person and period (UTC week starting Monday, or month) in which they
    had any event: ``person_id`` and ``ts``, the first event of that period — the input
    :func:`activity_retention` needs, aggregated in the store instead of read event by event."""
    if period not in ("week", "month"):
        raise ConfigError(f"period={period!r} is not valid: use week or month")
    return store.db.df(
        "SELECT person_id, min(ts) AS ts FROM events GROUP BY person_id, date_trunc(?, ts)",
        [period],
    )


def store_activity_retention(
    store: Any, *, period: Period = "week", as_of: Any = None
) -> pd.DataFrame:
    """:func:`activity_retention` of every event in the store, counted without reading the
    events into pandas: one pass over the store's sorted timeline (events by person and
    time: a person's periods come in order, so each new period is one comparison), or one
    SQL aggregate when there is no timeline. The same table as
    ``activity_retention(active_periods(store, period=period), period=period)``;
    ``as_of`` defaults to the latest event."""
    if period not in ("week", "month"):
        raise ConfigError(f"period={period!r} is not valid: use week or month")
    on_spark = getattr(store, "on_spark", False)  # shopfunnel.store.spark.SparkEvents
    counts = store.activity_counts(period) if on_spark else _activity_counts_timeline(store, period)
    if counts is None:
        counts = store.db.df(
            """
            WITH pp AS (SELECT person_id, date_trunc(?, ts) AS p FROM events
                        WHERE ts IS NOT NULL GROUP BY ALL),
                 c AS (SELECT p, min(p) OVER (PARTITION BY person_id) AS cohort FROM pp)
            SELECT cohort, p, count(*) AS active FROM c GROUP BY ALL
            """,
            [period],
        )
    if counts.empty:
        return pd.DataFrame(columns=COHORT_COLUMNS)
    cohort = _period_index(counts["cohort"], period).asi8
    p = _period_index(counts["p"], period).asi8
    n = counts["active"].to_numpy(dtype="int64")
    active = pd.Series(
        n, index=pd.MultiIndex.from_arrays([cohort, p - cohort]), name="active"
    ).sort_index()
    at_start = p == cohort
    sizes = pd.Series(n[at_start], index=cohort[at_start], name="cohort_size").sort_index()
    latest = (
        None
        if as_of is not None
        else store.latest_event_time()
        if on_spark
        else store.db.scalar("SELECT max(ts) FROM events")
    )
    end = naive_utc_timestamp(as_of if as_of is not None else latest)
    return _long_table(active, sizes, period, end)


# timeline rows read at a time: arrays of a few MB are recycled by the allocator from chunk
# to chunk, where arrays of 8M rows are fresh pages each time (at 10M events that page
# faulting was most of the pass)
CHUNK_ROWS = 1_000_000
_DENSE_PERIODS = 4_096  # up to this many periods (78 years of weeks) count in a dense grid


def _activity_counts_timeline(store: Any, period: Period) -> pd.DataFrame | None:
    """Persons by (cohort, period) start from the timeline (None when the store has none):
    ``cohort``, ``p`` (timestamps of period starts) and ``active``.

    A person's events are contiguous and in time order, so each (person, period) pair is
    one change of either along the rows, and the person's cohort is the period of their
    first row. Periods are numbered (weeks or months since 1970) with integer arithmetic
    and a per-day table, then counted in a dense (cohort, period) grid."""
    from shopfunnel.store import timeline

    try:
        tl = timeline.of_store(store)
    except OSError:
        return None
    if tl.side is not None or tl.live is not None:  # a live view: SQL serves it (ADR 0150)
        return None
    cohorts, periods = [], []
    for a, b in timeline.chunks(tl, CHUNK_ROWS) if len(tl) else []:
        person = tl.read("person", a, b)
        ordinal = period_ordinals(tl.read("t", a, b) // timeline.DAY_US, period)
        new_person = np.empty(len(person), dtype=bool)
        new_person[0] = True
        np.not_equal(person[1:], person[:-1], out=new_person[1:])
        new_pair = new_person.copy()
        new_pair[1:] |= ordinal[1:] != ordinal[:-1]  # a person's periods come in time order
        first_row = np.flatnonzero(new_person)
        pair_rows = np.flatnonzero(new_pair)
        owner = np.searchsorted(first_row, pair_rows, side="right") - 1
        cohorts.append(ordinal[first_row][owner])
        periods.append(ordinal[pair_rows])
    if not cohorts:
        return pd.DataFrame({"cohort": [], "p": [], "active": []})
    cohort, p = np.concatenate(cohorts), np.concatenate(periods)
    lo = int(min(cohort.min(), p.min()))
    span = int(max(cohort.max(), p.max())) - lo + 1
    if span <= _DENSE_PERIODS:
        grid = np.bincount((cohort - lo) * span + (p - lo), minlength=span * span)
        key = np.flatnonzero(grid)
        n = grid[key]
        key_c, key_p = key // span + lo, key % span + lo
    else:
        pairs, n = np.unique(np.stack([cohort, p], axis=1), axis=0, return_counts=True)
        key_c, key_p = pairs[:, 0], pairs[:, 1]
    return pd.DataFrame(
        {
            "cohort": _ordinal_starts(key_c, period),
            "p": _ordinal_starts(key_p, period),
            "active": n.astype(np.int64),
        }
    )


def period_ordinals(days: np.ndarray, period: Period) -> np.ndarray:
    """The period of each day (days since 1970, UTC) as a number: ISO weeks (from Monday)
    or calendar months since 1970. Months go through a table of the days spanned, so a
    large array needs no calendar arithmetic per element."""
    if period == "week":  # 1970-01-01 was a Thursday: Mondays are days = 4 (mod 7)
        return (days + 3) // 7
    if len(days) == 0:
        return days.astype(np.int64)
    lo, hi = int(days.min()), int(days.max())
    table = np.arange(lo, hi + 1).astype("datetime64[D]").astype("datetime64[M]")
    return table.astype(np.int64)[days - lo]


def _ordinal_starts(ordinals: np.ndarray, period: Period) -> np.ndarray:
    """The first instant of each period of :func:`period_ordinals`, as ``datetime64[us]``."""
    if period == "week":
        days = ordinals * 7 - 3
    else:
        days = ordinals.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return days.astype("datetime64[D]").astype("datetime64[us]")


def cohort_matrix(cohorts: pd.DataFrame) -> pd.DataFrame:
    """The long table of :func:`cohort_retention` as a matrix: one row per cohort
    (``cohort``, ``cohort_size``), one column per period k (named ``"0"``, ``"1"``, …)
    holding ``rate``; unobserved periods are NaN."""
    if cohorts.empty:
        return pd.DataFrame(columns=["cohort", "cohort_size"])
    wide = cohorts.pivot(index=["cohort", "cohort_size"], columns="period", values="rate")
    wide.columns = [str(c) for c in wide.columns]
    return wide.reset_index()


def _orders_frame(orders: pd.DataFrame) -> pd.DataFrame:
    _require(orders, ("person_id", "ts", "value"), "orders")
    return pd.DataFrame(
        {
            "person_id": orders["person_id"].astype(str).to_numpy(),
            "ts": naive_utc(orders["ts"]).to_numpy(),
            "value": pd.to_numeric(orders["value"], errors="coerce")
            .fillna(0.0)
            .astype(float)
            .to_numpy(),
        }
    )


def repeat_purchase_rate(orders: pd.DataFrame) -> float:
    """Share of customers with two or more orders: ``customers with ≥ 2 orders /
    customers with ≥ 1 order``. Two orders on the same day count as two. NaN when there
    are no orders."""
    per = _orders_frame(orders).groupby("person_id").size()
    return float((per >= 2).mean()) if len(per) else float("nan")


def time_between_orders(orders: pd.DataFrame) -> pd.Series:
    """Every gap between consecutive orders of the same customer, in days (float).

    A customer with n orders contributes n − 1 gaps; orders are taken in time order and
    two orders at the same instant give a gap of 0. Customers with one order contribute
    nothing.
    """
    frame = _orders_frame(orders)
    # sorted by (person_id, ts) as NumPy codes and times: no groupby over the id strings
    codes, _ = pd.factorize(frame["person_id"], sort=True)
    ts = frame["ts"].to_numpy()
    order = np.lexsort((ts, codes))
    codes, ts = codes[order], ts[order]
    same = codes[1:] == codes[:-1]
    days = (ts[1:] - ts[:-1])[same] / np.timedelta64(1, "D")
    return pd.Series(days, name="days", dtype=float)


def time_between_orders_distribution(orders: pd.DataFrame) -> pd.DataFrame:
    """The gaps of :func:`time_between_orders` counted in the buckets of
    :data:`GAP_BUCKETS_DAYS` (each ``[lower, upper)`` days): ``bucket``, ``lower_days``,
    ``upper_days``, ``gaps``, ``share`` (of all gaps; NaN when there are none)."""
    gaps = time_between_orders(orders).to_numpy()
    edges = np.array(GAP_BUCKETS_DAYS)
    counts = np.histogram(gaps, bins=np.append(edges[:-1], np.finfo(float).max))[0]
    labels = [
        f"{lo:g}–{hi:g} d" if np.isfinite(hi) else f"≥ {lo:g} d"
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    total = counts.sum()
    return pd.DataFrame(
        {
            "bucket": labels,
            "lower_days": edges[:-1],
            "upper_days": edges[1:],
            "gaps": counts.astype("int64"),
            "share": counts / total if total else np.full(len(counts), np.nan),
        }
    )


def orders_per_customer(orders: pd.DataFrame) -> pd.DataFrame:
    """How many customers placed 1, 2, 3, … orders: ``orders``, ``customers``, ``share``
    (of customers). Only counts that occur are listed."""
    per = _orders_frame(orders).groupby("person_id").size()
    counts = per.value_counts().sort_index()
    return pd.DataFrame(
        {
            "orders": counts.index.astype("int64"),
            "customers": counts.to_numpy(dtype="int64"),
            "share": counts.to_numpy() / max(len(per), 1),
        }
    )


@dataclass(frozen=True)
class RetentionSummary:
    """The store-wide retention figures of :func:`retention_summary`."""

    customers: int
    orders: int
    revenue: float
    repeat_customers: int
    repeat_purchase_rate: float
    orders_per_customer: float
    median_days_between_orders: float
    mean_days_between_orders: float
    average_order_value: float
    revenue_per_customer: float
    refunded_orders: int
    refund_rate: float
    refunded_value_share: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def retention_summary(orders: pd.DataFrame) -> RetentionSummary:
    """Store-wide figures over all orders in ``orders``:

    * ``customers``: distinct ``person_id``; ``orders``: rows; ``revenue``: sum of ``value``.
    * ``repeat_customers`` / ``repeat_purchase_rate``: see :func:`repeat_purchase_rate`.
    * ``orders_per_customer`` = orders / customers.
    * ``median_days_between_orders``, ``mean_days_between_orders``: over the gaps of
      :func:`time_between_orders` (NaN when nobody ordered twice).
    * ``average_order_value`` (AOV) = revenue / orders (gross, before refunds).
    * ``revenue_per_customer`` = revenue / customers.
    * ``refunded_orders``: orders whose ``refunded`` amount is not zero;
      ``refund_rate`` = refunded_orders / orders; ``refunded_value_share`` =
      Σ|refunded| / revenue. Without a ``refunded`` column these are 0.

    Ratios with a zero denominator are NaN.
    """
    frame = _orders_frame(orders)
    refunded = (
        pd.to_numeric(orders["refunded"], errors="coerce").fillna(0.0).abs().to_numpy()
        if "refunded" in orders.columns
        else np.zeros(len(frame))
    )
    per = frame.groupby("person_id").size()
    gaps = time_between_orders(orders)
    n_orders, n_customers = len(frame), len(per)
    revenue = float(frame["value"].sum())

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b else float("nan")

    n_refunded = int((refunded != 0).sum())
    return RetentionSummary(
        customers=n_customers,
        orders=n_orders,
        revenue=revenue,
        repeat_customers=int((per >= 2).sum()),
        repeat_purchase_rate=ratio(int((per >= 2).sum()), n_customers),
        orders_per_customer=ratio(n_orders, n_customers),
        median_days_between_orders=float(gaps.median()) if len(gaps) else float("nan"),
        mean_days_between_orders=float(gaps.mean()) if len(gaps) else float("nan"),
        average_order_value=ratio(revenue, n_orders),
        revenue_per_customer=ratio(revenue, n_customers),
        refunded_orders=n_refunded,
        refund_rate=ratio(n_refunded, n_orders),
        refunded_value_share=ratio(float(refunded.sum()), revenue),
    )
