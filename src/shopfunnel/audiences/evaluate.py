"""Who is in an audience at one instant: each kind of rule, defined exactly.

Every rule is judged at ``as_of`` (default: the store's latest event; a date alone means the
end of that day), on the events at or before it; all times are UTC. *Persons seen* are the
persons with an event at or before ``as_of``. An *order* is a distinct ``order_id`` of
``purchase`` events at or before ``as_of``: its person and time are those of its first
purchase event and its value the sum of their values (the store's ``orders`` view, cut at
``as_of``). Periods ``[as_of − d, as_of]`` include both ends.

- ``stage``: :func:`shopfunnel.stages.place_persons` at ``as_of`` with the model file's
  ``[placement]`` (lookback 365 days); a person is in when their ``stage`` is ``stage``
  (any case) and their ``status`` is one of ``status``. Any status string is accepted.
- ``rfm``: :func:`shopfunnel.customers.rfm.rfm_table` of the orders, recency measured to
  ``as_of``; ``prospects`` are the persons seen with no order.
- ``drop_off``: :func:`shopfunnel.funnel` over the events at or before ``as_of`` with
  ``steps`` and ``window = within``; the persons of ``FunnelResult.dropped(step)`` (reached
  step *k*, never step *k + 1*) whose attempt had its whole window before ``as_of``
  (``started_at + within ≤ as_of``), and, with ``lookback``, reached step *k* in
  ``[as_of − lookback, as_of]``.
- ``events``: persons whose number of events named ``event`` matching every ``where``
  condition in ``[as_of − within, as_of]`` is at least ``at_least`` (and at most
  ``at_most``). A condition's key is an event column, an item field (true when *any* item
  of the event has one of the values) or a ``properties`` key; values compare as text, a
  list means any of them.
- ``abandoned``: let *t* be the person's latest event named in ``did`` (and matching
  ``where``) in ``[as_of − lookback, as_of]``. In when ``t ≤ as_of − after`` (exactly
  ``after`` old counts) and the person has no event named in ``without`` at a time in
  ``[t, as_of]`` (one at the same instant as *t* counts as following it).
- ``orders``: persons seen whose orders (in ``[as_of − within, as_of]`` when ``within`` is
  set) number from ``min_orders`` to ``max_orders`` and whose revenue (sum of order values,
  refunds not subtracted) is from ``min_revenue`` to ``max_revenue``, bounds included.
  ``min_orders = 0`` lets persons with no order in.
- ``clv``: BG/NBD and Gamma-Gamma (:mod:`shopfunnel.customers.clv`) fitted on the orders,
  calibration ending at ``as_of``'s day, in weeks; a customer's *value* is
  ``expected_value`` over ``horizon``, or, when too few repeat buyers fit Gamma-Gamma,
  expected purchases × their own mean order value. ``top_share`` keeps the customers whose
  value is at least the value of the ⌈share × customers⌉-th best (ties at the cut all in);
  ``top`` the same with a count; ``min_value``, ``p_alive_below`` (strictly below) and
  ``p_alive_at_least`` filter. All conditions given must hold.
- ``lapsed``: :func:`shopfunnel.customers.winback.lapsed_customers` (gap rule) on the
  orders at ``as_of`` with ``gap_multiplier``: days since the last order strictly above the
  multiplier × the customer's usual gap (:mod:`shopfunnel.stages.gaps`).
- ``all`` / ``any``: the intersection / union of the parts; ``not``: persons seen who are
  not in the part. A part named by a string is that audience, judged at the same
  ``as_of``; an audience that refers to itself, directly or not, is refused.

On Spark (:class:`shopfunnel.store.spark.SparkEvents`, ADR 0166) the persons seen, the
orders and the ``abandoned`` rule are computed in Spark SQL by the same definitions, the
placement by its Spark path; the ``stage``, ``rfm``, ``orders``, ``clv``, ``lapsed``,
``all``, ``any`` and ``not`` rules then run unchanged, so every built-in audience has the
store's members. ``events``, ``drop_off`` and ``where`` conditions are refused there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from shopfunnel._time import point_in_time
from shopfunnel.audiences.definitions import (
    AbandonedRule,
    AllRule,
    AnyRule,
    Audience,
    ClvRule,
    DropOffRule,
    EventsRule,
    LapsedRule,
    NotRule,
    OrdersRule,
    RfmRule,
    StageRule,
    seconds,
)
from shopfunnel.errors import ConfigError, InputError
from shopfunnel.model import Model
from shopfunnel.store import schema
from shopfunnel.store.db import json_pointer, quote_ident
from shopfunnel.store.store import Store
from shopfunnel.store.summary import spark_events

_EVENT_COLUMNS = {c.name for c in schema.COLUMNS + schema.DERIVED_COLUMNS} - {"items", "properties"}


def resolve_as_of(store: Store, as_of: datetime | date | str | None) -> pd.Timestamp | None:
    """``as_of`` as a naive UTC timestamp: the store's latest event when None (None for an
    empty store); a date, or a date-only text, means the end of that day (the stage model's
    reading of a time, :func:`shopfunnel._time.point_in_time`)."""
    if as_of is None:
        latest = (
            spark_events(store).latest_event_time()
            if _on_spark(store)
            else store.db.scalar("SELECT max(ts) FROM events")
        )
        return None if latest is None else pd.Timestamp(latest)
    if isinstance(as_of, pd.Timestamp):  # kept to the nanosecond (a datetime has microseconds)
        return as_of.tz_convert("UTC").tz_localize(None) if as_of.tzinfo is not None else as_of
    return pd.Timestamp(point_in_time(as_of, "time"))


def match_sql(events: Sequence[str], where: Mapping[str, Any], params: list[Any]) -> str:
    """A SQL condition on ``events`` rows: the event name is one of ``events`` and every
    ``where`` condition holds (definitions in the module docstring). Values are bound."""
    parts = [f"event IN ({', '.join('?' * len(events))})"]
    params.extend(events)
    for key, value in where.items():
        values = [_text(v) for v in (value if isinstance(value, list | tuple) else [value])]
        marks = ", ".join("?" * len(values))
        if key in schema.ITEM_FIELDS:
            parts.append(
                f"list_has_any(list_transform(items, lambda x: CAST(x.{key} AS VARCHAR)), "
                f"[{marks}])"
            )
        elif key in _EVENT_COLUMNS:
            parts.append(f"CAST({quote_ident(key)} AS VARCHAR) IN ({marks})")
        else:
            parts.append(f"json_extract_string(properties, ?) IN ({marks})")
            params.append(json_pointer(key))
        params.extend(values)
    return "(" + " AND ".join(parts) + ")"


def orders_as_of(store: Store, as_of: pd.Timestamp) -> pd.DataFrame:
    """The store's orders as they stood at ``as_of`` (module docstring): order_id,
    person_id, ts, value."""
    if _on_spark(store):
        return spark_events(store).orders_as_of(as_of)
    return store.db.df(
        """
        SELECT order_id, arg_min(person_id, ts) AS person_id, min(ts) AS ts,
               coalesce(sum(CAST(value AS DOUBLE)), 0) AS value
        FROM events WHERE event = 'purchase' AND order_id IS NOT NULL AND ts <= ?
        GROUP BY order_id ORDER BY order_id
        """,
        [as_of],
    )


def _on_spark(store: Any) -> bool:
    return bool(getattr(store, "on_spark", False))  # shopfunnel.store.spark.SparkEvents


def _not_on_spark(store: Any, what: str) -> None:
    if _on_spark(store):
        raise ConfigError(
            f"{what} is not computed on Spark (the built-in audiences are): load the "
            "events into a store (`shopfunnel ingest`) and run the audience there with --db"
        )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Context:
    """One evaluation: the store, the instant, the model, and how names are resolved.
    Tables several rules read (placement, orders, CLV) are computed once."""

    store: Store
    as_of: pd.Timestamp
    model: Model
    resolve: Callable[[str], Audience]
    _cache: dict[str, Any] = field(default_factory=dict)
    _stack: list[str] = field(default_factory=list)

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def seen(self) -> pd.Index:
        return self.once(
            "seen",
            lambda: _ids(
                spark_events(self.store).persons_seen(self.as_of)
                if _on_spark(self.store)
                else self.store.db.df(
                    "SELECT DISTINCT person_id FROM events WHERE ts <= ?", [self.as_of]
                )
            ),
        )

    def orders(self) -> pd.DataFrame:
        """The orders at ``as_of``: order_id, person_id, ts, value."""
        return self.once("orders", lambda: orders_as_of(self.store, self.as_of))

    def evaluate(self, rule: Any) -> pd.Index:
        """The person ids of ``rule`` (a rule or an audience's name), sorted."""
        if isinstance(rule, str):
            return self.named(rule)
        handler = _HANDLERS[type(rule)]
        return handler(self, rule)

    def named(self, name: str) -> pd.Index:
        if name in self._stack:
            loop = " → ".join([*self._stack[self._stack.index(name) :], name])
            raise ConfigError(f"audience {name!r} refers to itself ({loop}): break the loop")
        self._stack.append(name)
        try:
            return self.once(f"audience:{name}", lambda: self.evaluate(self.resolve(name).rule))
        finally:
            self._stack.pop()


def _ids(frame: pd.DataFrame | pd.Series | Sequence[Any]) -> pd.Index:
    values = frame["person_id"] if isinstance(frame, pd.DataFrame) else frame
    return pd.Index(pd.Series(values, dtype=object).dropna().astype(str).unique()).sort_values()


def _stage(ctx: Context, rule: StageRule) -> pd.Index:
    from shopfunnel.stages.placement import place_persons

    placed = ctx.once(
        "placement",
        lambda: place_persons(ctx.store, model=ctx.model, as_of=ctx.as_of.to_pydatetime()),
    )
    keep = np.ones(len(placed), dtype=bool)
    if rule.stage is not None:
        keep &= (placed["stage_index"] == ctx.model.stage_index(rule.stage)).to_numpy()
    if rule.status is not None:
        keep &= placed["status"].astype(str).str.lower().isin(rule.status).to_numpy()
    return _ids(placed[keep])


def _rfm(ctx: Context, rule: RfmRule) -> pd.Index:
    from shopfunnel.customers.rfm import rfm_table

    orders = ctx.orders()
    wanted = set(rule.groups)
    found = pd.Index([], dtype=object)
    if not orders.empty:
        table = ctx.once("rfm", lambda: rfm_table(orders, as_of=ctx.as_of))
        found = _ids(table[table["group"].isin(wanted)])
    if "prospects" in wanted:
        found = found.union(ctx.seen().difference(_ids(orders)))
    return found.sort_values()


def _drop_off(ctx: Context, rule: DropOffRule) -> pd.Index:
    from shopfunnel.funnel import funnel

    _not_on_spark(ctx.store, "a drop_off rule")
    steps = list(rule.steps or ctx.model.funnel.steps)
    if not 1 <= rule.step < len(steps):
        raise ConfigError(
            f"drop_off step {rule.step} is not valid: the funnel "
            f"{' → '.join(steps)} has steps 1 to {len(steps) - 1} to drop off after"
        )
    window = rule.within if rule.within is not None else ctx.model.funnel.window
    latest = ctx.store.db.scalar("SELECT max(ts) FROM events")
    source: Any = ctx.store
    if latest is not None and pd.Timestamp(latest) > ctx.as_of:
        source = ctx.store.db.arrow("SELECT * FROM events WHERE ts <= ?", [ctx.as_of])
    dropped = funnel(source, steps, window=window, allow_unknown=True).dropped(rule.step)
    settled = dropped["started_at"] + pd.Timedelta(seconds=seconds(window)) <= ctx.as_of
    if rule.lookback is not None:
        settled &= dropped["reached_at"] >= ctx.as_of - pd.Timedelta(seconds=seconds(rule.lookback))
    return _ids(dropped[settled.to_numpy()])


def _events(ctx: Context, rule: EventsRule) -> pd.Index:
    _not_on_spark(ctx.store, "an events rule")
    params: list[Any] = []
    cond = match_sql([rule.event], rule.where, params)
    start = ctx.as_of - pd.Timedelta(seconds=seconds(rule.within))
    having = "count(*) >= ?" + (" AND count(*) <= ?" if rule.at_most is not None else "")
    params += [start, ctx.as_of, rule.at_least] + (
        [rule.at_most] if rule.at_most is not None else []
    )
    return _ids(
        ctx.store.db.df(
            f"SELECT person_id FROM events WHERE {cond} AND ts >= ? AND ts <= ? "
            f"GROUP BY person_id HAVING {having}",
            params,
        )
    )


def _abandoned(ctx: Context, rule: AbandonedRule) -> pd.Index:
    start = ctx.as_of - pd.Timedelta(seconds=seconds(rule.lookback))
    ripe = ctx.as_of - pd.Timedelta(seconds=seconds(rule.after))
    if _on_spark(ctx.store):
        if rule.where:
            _not_on_spark(ctx.store, "an abandoned rule with where conditions")
        return _ids(
            spark_events(ctx.store).abandoned(
                list(rule.did), list(rule.without), start, ctx.as_of, ripe
            )
        )
    params: list[Any] = []
    did = match_sql(rule.did, rule.where, params)
    params += [start, ctx.as_of, ripe, *rule.without, ctx.as_of]
    return _ids(
        ctx.store.db.df(
            f"""
        WITH latest AS (
            SELECT person_id, max(ts) AS t FROM events
            WHERE {did} AND ts >= ? AND ts <= ? GROUP BY person_id
        )
        SELECT l.person_id FROM latest l
        WHERE l.t <= ?
          AND NOT EXISTS (
              SELECT 1 FROM events e
              WHERE e.person_id = l.person_id
                AND e.event IN ({", ".join("?" * len(rule.without))})
                AND e.ts >= l.t AND e.ts <= ?)
        """,
            params,
        )
    )


def _orders(ctx: Context, rule: OrdersRule) -> pd.Index:
    orders = ctx.orders()
    if rule.within is not None:
        orders = orders[orders["ts"] >= ctx.as_of - pd.Timedelta(seconds=seconds(rule.within))]
    per = orders.groupby("person_id").agg(n=("order_id", "size"), revenue=("value", "sum"))
    if rule.min_orders == 0:
        others = ctx.seen().difference(per.index.astype(str))
        per = pd.concat([per, pd.DataFrame({"n": 0, "revenue": 0.0}, index=others)])
    keep = per["n"] >= rule.min_orders
    if rule.max_orders is not None:
        keep &= per["n"] <= rule.max_orders
    if rule.min_revenue is not None:
        keep &= per["revenue"] >= rule.min_revenue
    if rule.max_revenue is not None:
        keep &= per["revenue"] <= rule.max_revenue
    return _ids(pd.Series(per.index[keep.to_numpy()]))


def customer_values(
    orders: pd.DataFrame, as_of: pd.Timestamp, horizon: str | float
) -> pd.DataFrame:
    """Per customer at ``as_of``: ``person_id``, ``p_alive``, ``expected_purchases`` and
    ``value`` over ``horizon`` (definition in the module docstring, ``clv``)."""
    from shopfunnel.customers.clv import (
        BetaGeoModel,
        GammaGammaModel,
        customer_value,
        summary_from_orders,
    )

    columns = ["person_id", "p_alive", "expected_purchases", "value"]
    if orders.empty:
        return pd.DataFrame(columns=columns)
    summary = summary_from_orders(orders, calibration_end=as_of, time_unit="W")
    purchases = BetaGeoModel().fit(summary)
    try:
        spend: GammaGammaModel | None = GammaGammaModel().fit(summary)
    except InputError:  # too few repeat buyers: value from their own mean order value
        spend = None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a degenerate fit: NaN
        table = customer_value(summary, purchases, spend, horizon=seconds(horizon) / (7 * 86_400))
    if spend is None:
        table["expected_value"] = table["expected_purchases"] * table["revenue"] / table["orders"]
    out = table.reset_index().rename(
        columns={table.index.name or "index": "person_id", "expected_value": "value"}
    )
    return out[columns]


def _clv(ctx: Context, rule: ClvRule) -> pd.Index:
    table = ctx.once(
        f"clv:{seconds(rule.horizon)}",
        lambda: customer_values(ctx.orders(), ctx.as_of, rule.horizon),
    )
    keep = pd.Series(True, index=table.index)
    value = pd.to_numeric(table["value"], errors="coerce")
    for count in (
        [math.ceil(rule.top_share * len(table))] if rule.top_share is not None else []
    ) + ([rule.top] if rule.top is not None else []):
        ranked = value.dropna().sort_values(ascending=False)
        if len(ranked):
            keep &= value >= ranked.iloc[min(count, len(ranked)) - 1]
        else:
            keep &= False
    if rule.min_value is not None:
        keep &= value >= rule.min_value
    if rule.p_alive_below is not None:
        keep &= table["p_alive"] < rule.p_alive_below
    if rule.p_alive_at_least is not None:
        keep &= table["p_alive"] >= rule.p_alive_at_least
    return _ids(table[keep.to_numpy()])


def _lapsed(ctx: Context, rule: LapsedRule) -> pd.Index:
    from shopfunnel.customers.winback import lapsed_customers

    orders = ctx.orders()
    if orders.empty:
        return pd.Index([], dtype=object)
    return _ids(
        lapsed_customers(
            orders,
            rule="gap",
            as_of=ctx.as_of,
            gap_multiplier=rule.gap_multiplier,
            placement=ctx.model.placement,
        )
    )


def _all(ctx: Context, rule: AllRule) -> pd.Index:
    found = ctx.evaluate(rule.of[0])
    for part in rule.of[1:]:
        found = found.intersection(ctx.evaluate(part))
    return found.sort_values()


def _any(ctx: Context, rule: AnyRule) -> pd.Index:
    found = ctx.evaluate(rule.of[0])
    for part in rule.of[1:]:
        found = found.union(ctx.evaluate(part))
    return found.sort_values()


def _not(ctx: Context, rule: NotRule) -> pd.Index:
    return ctx.seen().difference(ctx.evaluate(rule.rule)).sort_values()


_HANDLERS: dict[type, Callable[[Context, Any], pd.Index]] = {
    StageRule: _stage,
    RfmRule: _rfm,
    DropOffRule: _drop_off,
    EventsRule: _events,
    AbandonedRule: _abandoned,
    OrdersRule: _orders,
    ClvRule: _clv,
    LapsedRule: _lapsed,
    AllRule: _all,
    AnyRule: _any,
    NotRule: _not,
}
